using System.Threading.Tasks.Sources;

namespace Router.Net.Transport.Epoll;

/// <summary>
/// One direction's readiness of an epoll-registered socket: a counter the event loop bumps on every edge, and at most
/// one waiter (the connection's reader or writer) resumed when it moves. No allocation per wait. A struct kept as a
/// field of its owner, which is the <see cref="IValueTaskSource{TResult}"/> the wait hands out (one object fewer per
/// direction per connection); never copy it.
/// </summary>
/// <remarks>
/// A waiter passes the count it saw when it last found the socket drained (EAGAIN or a short read); the wait completes
/// at once if an edge came since, so an edge between that syscall and the wait is never lost. The waiter's
/// continuation runs inline on the event loop thread, as the runtime's inline socket completions do.
/// </remarks>
internal struct Readiness
{
    private const int Idle = 0;
    private const int Waiting = 1;

    private ManualResetValueTaskSourceCore<bool> _core;
    private int _sequence;
    private int _state;

    /// <summary>Edges seen so far.</summary>
    public int Sequence => Volatile.Read(ref _sequence);

    /// <summary>
    /// Completes when <see cref="Sequence"/> differs from <paramref name="drainedAt"/> (or the socket was aborted);
    /// <paramref name="owner"/> is the object holding this field, forwarding its <see cref="IValueTaskSource{TResult}"/> calls here.
    /// </summary>
    public ValueTask<int> WaitAsync(IValueTaskSource<int> owner, int drainedAt)
    {
        if (Volatile.Read(ref _sequence) != drainedAt)
        {
            return new ValueTask<int>(0);
        }

        _core.Reset();
        Interlocked.Exchange(ref _state, Waiting);
        if (Volatile.Read(ref _sequence) != drainedAt && Interlocked.Exchange(ref _state, Idle) == Waiting)
        {
            // An edge came while we registered, and we took the wait back before the loop did.
            return new ValueTask<int>(0);
        }

        return new ValueTask<int>(owner, _core.Version);
    }

    /// <summary>From the event loop (or an abort): count the edge and resume the waiter, if any, on this thread.</summary>
    public void Signal()
    {
        Interlocked.Increment(ref _sequence);
        if (Interlocked.Exchange(ref _state, Idle) == Waiting)
        {
            _core.SetResult(true);
        }
    }

    public int GetResult(short token)
    {
        _core.GetResult(token);
        return 0;
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
