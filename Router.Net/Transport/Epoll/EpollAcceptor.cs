using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Router.Net.Transport.Epoll;

/// <summary>
/// Accepting on an epoll loop: the listening socket (non-blocking, TCP_NODELAY so accepted sockets inherit it) is
/// registered edge-triggered on one loop, and each edge drains the backlog with accept4 right there. Each new
/// connection goes to the next loop in turn, so connections spread over the loops whichever loop accepted them.
/// </summary>
/// <remarks>
/// No thread of its own: a thread blocked in accept4 woke once per connection, about a fifth of the router's CPU under
/// a new connection per request. The two ways accepting stops for a while resume off the loop: at the connection cap,
/// the slot a closing connection gives back (<see cref="ConnectionGate.SlotFreed"/>) queues a drain on the thread pool;
/// out of descriptors, a timer drains again 50 ms later. Drains may overlap; accept4 hands each connection to one.
/// </remarks>
internal sealed class EpollAcceptor
{
    private static readonly Action<EpollAcceptor> s_drain = static acceptor => acceptor.Drain();

    [ThreadStatic]
    private static EpollAcceptor? t_draining;

    private readonly SafeHandle _listener;
    private readonly IConnectionHandler _handler;
    private readonly ConnectionGate? _gate;
    private readonly Action? _release;
    private readonly Action<SocketError> _acceptFailed;
    private readonly Action<Exception> _handlerFailed;
    private readonly Action? _slotFreed;
    private readonly Timer _retry;
    private EpollLoop? _loop;
    private int _stopped;
    private int _paused;
    private int _retrying;
    private int _draining;

    public EpollAcceptor(Socket listener, IConnectionHandler handler, ConnectionGate? gate, Action<SocketError> acceptFailed, Action<Exception> handlerFailed)
    {
        listener.Blocking = false;
        listener.NoDelay = true;
        _listener = listener.SafeHandle;
        _handler = handler;
        _gate = gate;
        _release = gate is null ? null : gate.Release;
        _acceptFailed = acceptFailed;
        _handlerFailed = handlerFailed;
        _retry = new Timer(static state => ((EpollAcceptor)state!).OnRetry(), this, Timeout.Infinite, Timeout.Infinite);
        DescriptorReserve.TryRestore();
        if (gate is not null)
        {
            _slotFreed = OnSlotFreed;
            gate.SlotFreed += _slotFreed;
        }
    }

    /// <summary>The listening socket's descriptor, for the loop's registration.</summary>
    public SafeHandle Handle => _listener;

    /// <summary>Registers with a loop; connections already waiting are accepted at the first edge.</summary>
    public void Start() => _loop = EpollTransport.Register(this);

    /// <summary>
    /// Stops accepting: no edge reaches it any more and no drain hands over a connection after this returns. The
    /// caller closes the listening socket afterwards.
    /// </summary>
    public void Stop()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        if (_slotFreed is not null)
        {
            _gate!.SlotFreed -= _slotFreed;
        }

        _loop?.Unregister(this);
        _retry.Dispose();

        // A drain already past its stop check finishes its one accept4 and hand-over; they never block. A drain on this
        // very thread (the caller stops from inside it) is not waited for.
        int own = t_draining == this ? 1 : 0;
        var spin = default(SpinWait);
        while (Volatile.Read(ref _draining) > own)
        {
            spin.SpinOnce();
        }
    }

    /// <summary>Accepts until the backlog is empty, the cap is reached or accept4 fails.</summary>
    public void Drain()
    {
        Interlocked.Increment(ref _draining);
        t_draining = this;
        try
        {
            while (Volatile.Read(ref _stopped) == 0)
            {
                if (!DescriptorReserve.IsWhole)
                {
                    // Out of descriptors a moment ago (here, on another listener, an upstream connect): nothing is
                    // accepted until the reserve is back, or the accepts would take it.
                    RetryLater(error: null);
                    return;
                }

                if (_gate is not null && !_gate.TryEnter())
                {
                    // At the cap: the backlog keeps newcomers. A slot given back after this flag is set drains again;
                    // one given back before it is taken by the second try.
                    Volatile.Write(ref _paused, 1);
                    Interlocked.MemoryBarrier();
                    if (!_gate.TryEnter())
                    {
                        return;
                    }

                    Volatile.Write(ref _paused, 0);
                }

                EpollConnection? accepted;
                int errno;
                try
                {
                    accepted = EpollTransport.Accept(_listener, out errno, setNoDelay: false);
                }
                catch (ObjectDisposedException)
                {
                    // The listener closed under a drain that was queued before it stopped.
                    _gate?.Release();
                    return;
                }
                catch (Exception ex)
                {
                    // Not expected (the connection's set-up failed): never let it end the loop thread that drains.
                    _gate?.Release();
                    _handlerFailed(ex);
                    RetryLater(error: null);
                    return;
                }

                if (accepted is null)
                {
                    _gate?.Release();
                    if (errno is EpollNative.EINTR or EpollNative.EPROTO or EpollNative.ECONNABORTED)
                    {
                        // A signal, or the connection went away before we took it: try the next one.
                        continue;
                    }

                    if (errno != EpollNative.EAGAIN)
                    {
                        // Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS): the connection stays in the backlog;
                        // try again in a moment rather than at every newcomer's edge. Meanwhile the runtime gets the
                        // reserve, in case it must start a thread.
                        if (errno is EpollNative.EMFILE or EpollNative.ENFILE)
                        {
                            DescriptorReserve.Release();
                        }

                        RetryLater(EpollNative.ToSocketError(errno));
                    }

                    return;
                }

                try
                {
                    _handler.OnConnection(accepted, _release);
                }
                catch (Exception ex)
                {
                    // A handler that throws did not take the connection.
                    _handlerFailed(ex);
                    accepted.Abort("handler failed");
                    _gate?.Release();
                }
            }
        }
        finally
        {
            t_draining = null;
            Interlocked.Decrement(ref _draining);
        }
    }

    private void OnSlotFreed()
    {
        if (Volatile.Read(ref _paused) != 0 && Interlocked.Exchange(ref _paused, 0) != 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(s_drain, this, preferLocal: false);
        }
    }

    /// <summary>Drains again in 50 ms (once, however many failures meanwhile), logging <paramref name="error"/> if any.</summary>
    private void RetryLater(SocketError? error)
    {
        if (Interlocked.Exchange(ref _retrying, 1) != 0)
        {
            return;
        }

        if (error is { } accept)
        {
            _acceptFailed(accept);
        }

        try
        {
            _retry.Change(50, Timeout.Infinite);
        }
        catch (ObjectDisposedException)
        {
            // Stopped meanwhile.
        }
    }

    private void OnRetry()
    {
        Volatile.Write(ref _retrying, 0);

        // Accept only once the reserve is whole again (its timer takes it back): still out, wait another moment.
        if (!DescriptorReserve.IsWhole)
        {
            RetryLater(error: null);
            return;
        }

        Drain();
    }
}
