using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;

namespace Router.Net.Transport.Epoll;

/// <summary>
/// A <see cref="DirectReader"/> on an epoll-registered socket: one non-blocking recv per edge. A read that comes back
/// short means the socket is drained, so the next read waits for the next edge instead of asking the kernel again
/// (the runtime's sockets always try once more first, and that try is an EAGAIN per wait). Once epoll reported a
/// hang-up, reads always ask the kernel, so the end of the stream is seen.
/// </summary>
internal sealed class EpollReader : DirectReader, IValueTaskSource<int>
{
    private readonly EpollConnection _connection;
    private readonly SafeHandle _handle;
    private Readiness _readable;
    // Registration reports the socket's state as a first edge, so a new connection waits for that edge before reading.
    private int _drainedAt;

    public EpollReader(EpollConnection connection, SafeHandle handle)
        : base(connection)
    {
        _connection = connection;
        _handle = handle;
    }

    /// <summary>From the loop: a readable edge (or an abort).</summary>
    public void Signal() => _readable.Signal();

    /// <summary>True when nothing is buffered and the socket has nothing to read (no bytes, no FIN, no error).</summary>
    /// <remarks>
    /// Always one peek, even with no edge since the last drained read: an edge for bytes or a FIN already in the kernel
    /// may not be counted yet (its loop is busy, maybe with the very request that asks, or is another thread), and a
    /// connection reused then hands those bytes to that request as its response, or loses it to the close.
    /// </remarks>
    public unsafe bool IsIdleClean()
    {
        if (!Buffered().IsEmpty)
        {
            return false;
        }

        int sequence = _readable.Sequence;
        byte probe;
        nint received = EpollNative.Recv(_handle, &probe, 1, EpollNative.MsgPeek | EpollNative.MsgDontWait);
        if (received < 0 && Marshal.GetLastPInvokeError() == EpollNative.EAGAIN)
        {
            _drainedAt = sequence;
            return true;
        }

        return false;
    }

    protected override ValueTask<int> WaitForDataAsync() => _readable.WaitAsync(this, _drainedAt);

    protected override ValueTask<int> ReceiveAsync(Memory<byte> memory)
    {
        while (true)
        {
            int sequence = _readable.Sequence;
            int received = TryReceive(memory.Span, out int errno);
            if (received >= 0)
            {
                // A short read drained the socket, unless the peer also closed: a FIN that came with the last bytes
                // has no edge of its own left, so the next read must ask the kernel (and get 0).
                _drainedAt = received < memory.Length && !_connection.HungUp ? sequence : -1;
                return new ValueTask<int>(received);
            }

            if (errno == EpollNative.EINTR)
            {
                continue;
            }

            if (errno != EpollNative.EAGAIN)
            {
                return ValueTask.FromException<int>(new SocketException((int)EpollNative.ToSocketError(errno)));
            }

            _drainedAt = sequence;
            var wait = _readable.WaitAsync(this, sequence);
            if (!wait.IsCompleted)
            {
                return ReceiveAfterWaitAsync(wait, memory);
            }
        }
    }

    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private async ValueTask<int> ReceiveAfterWaitAsync(ValueTask<int> wait, Memory<byte> memory)
    {
        await wait.ConfigureAwait(false);
        return await ReceiveAsync(memory).ConfigureAwait(false);
    }

    private unsafe int TryReceive(Span<byte> buffer, out int errno)
    {
        fixed (byte* p = buffer)
        {
            nint received = EpollNative.Recv(_handle, p, buffer.Length, EpollNative.MsgDontWait);
            errno = received < 0 ? Marshal.GetLastPInvokeError() : 0;
            return (int)received;
        }
    }

    int IValueTaskSource<int>.GetResult(short token) => _readable.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _readable.GetStatus(token);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _readable.OnCompleted(continuation, state, token, flags);
}
