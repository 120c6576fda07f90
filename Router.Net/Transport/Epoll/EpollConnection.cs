using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Router.Net.Transport.Epoll;

/// <summary>
/// A plain TCP connection served by our own epoll loop (<see cref="EpollLoop"/>) instead of the runtime's socket
/// engine: reads and writes are direct non-blocking syscalls, and waits are readiness edges. Client connections and
/// upstream connections both use it on Linux x64 (<see cref="EpollTransport"/>).
/// </summary>
internal sealed class EpollConnection : PipeConnection
{
    private readonly EpollLoop _loop;
    private readonly EpollReader _reader;
    private readonly EpollWriter _writer;
    private readonly byte[] _remoteAddress;
    private Action<object>? _starter;
    private object? _starterState;
    private int _registered;
    private int _hangUp;

    /// <summary>A connection owning a non-blocking descriptor: accepted with accept4, or opened by <see cref="ConnectAsync"/>.</summary>
    /// <param name="handle">The connection's descriptor, owned from now on.</param>
    /// <param name="remoteAddress">The peer's address as text (<see cref="AddressText"/>).</param>
    /// <param name="loop">The loop serving it.</param>
    /// <param name="setNoDelay">False when the descriptor already has TCP_NODELAY (inherited from its listener).</param>
    /// <remarks>No runtime <see cref="Socket"/> is made: it would cost an object, endpoints and, on the runtime's own
    /// paths, an async context per socket, none of which this transport uses.</remarks>
    public EpollConnection(SafeHandle handle, byte[] remoteAddress, EpollLoop loop, bool setNoDelay = true)
        : base(socket: null, inputPipe: false)
    {
        Handle = handle;
        _remoteAddress = remoteAddress;
        if (setNoDelay)
        {
            EpollNative.SetNoDelay(handle);
        }

        _loop = loop;
        _receiveThread = loop.ThreadId;
        _reader = new EpollReader(this, handle);
        _writer = new EpollWriter(this, handle);
    }

    /// <summary>Slot and generation in the loop's table (the epoll data word).</summary>
    public ulong Token { get; set; }

    /// <summary>Its place in the loop's list of connects in progress (<see cref="EpollLoop.BeginConnect"/>); -1 when not there.</summary>
    public int ConnectIndex { get; set; } = -1;

    public SafeHandle Handle { get; }

    public override PipeReader Input => _reader;

    public override PipeWriter Output => _writer;

    /// <summary>Epoll reported the peer's FIN, a reset or an error.</summary>
    public bool HungUp => Volatile.Read(ref _hangUp) != 0;

    /// <summary>
    /// Aborted, or the peer closed or reset: the reader saw the end, or epoll reported a hang-up. An idle pooled
    /// upstream connection learns of its close from the hang-up edge, without anyone reading.
    /// </summary>
    public override bool IsClosed => Aborted || _reader.Ended || HungUp;

    /// <summary>Nobody reads an idle pooled connection, so ask the kernel: one peek at the socket.</summary>
    public override bool IsIdleClean() => !IsClosed && _reader.IsIdleClean();

    /// <summary>
    /// Connects to <paramref name="endPoint"/> without blocking, on <paramref name="loop"/> (pass the caller's loop so
    /// the exchange stays on one thread). Throws <see cref="SocketException"/> when refused, <see cref="TimeoutException"/>
    /// after <paramref name="timeoutMs"/>.
    /// </summary>
    public static async ValueTask<EpollConnection> ConnectAsync(IPEndPoint endPoint, int timeoutMs, EpollLoop loop)
    {
        var handle = EpollNative.OpenStream(endPoint.AddressFamily);
        EpollConnection connection;
        try
        {
            // Connecting: the first write edge says it finished; SO_ERROR and a hang-up say whether it failed.
            int started = EpollNative.StartConnect(handle, endPoint);
            if (started != 0 && started != EpollNative.EINPROGRESS)
            {
                throw new SocketException((int)EpollNative.ToSocketError(started));
            }

            connection = new EpollConnection(handle, AddressText.Format(endPoint), loop);
        }
        catch
        {
            handle.Dispose();
            throw;
        }

        try
        {
            connection.Start();

            // The first write edge, or the loop's connect timer at the deadline, ends the wait; EndConnect says which.
            loop.BeginConnect(connection, timeoutMs);
            await connection._writer.WaitWritableAsync(0).ConfigureAwait(false);
            if (!loop.EndConnect(connection))
            {
                throw new TimeoutException($"the connect took longer than {timeoutMs} ms");
            }

            int errno = EpollNative.PendingError(connection.Handle);
            if (errno != 0 || connection.HungUp)
            {
                // A refused connect reports an error and a hang-up edge; SO_ERROR may already have been read back.
                throw new SocketException((int)(errno > 0 ? EpollNative.ToSocketError(errno) : SocketError.ConnectionRefused));
            }
        }
        catch
        {
            _ = loop.EndConnect(connection); // a connect that failed before its wait ended leaves the list
            connection.Abort("connect failed");
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return connection;
    }

    /// <summary>From the loop: the connect's deadline passed. Wakes its wait, which finds the connect no longer on the loop's list.</summary>
    public void OnConnectTimeout() => _writer.Signal();

    /// <summary>Registers with the loop (once); from then on edges arrive.</summary>
    public override void Start()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 0)
        {
            _loop.Register(this);
        }
    }

    /// <summary>
    /// Registers with the loop and runs <paramref name="start"/>(<paramref name="state"/>) on the loop thread at the
    /// first edge, which registration reports at once (a new connection is writable): the connection's work begins on
    /// the thread that serves it, not on the caller's (the loop that accepted it).
    /// </summary>
    public void StartOnLoop(Action<object> start, object state)
    {
        _starterState = state;
        Volatile.Write(ref _starter, start);
        Start();
    }

    /// <summary>From the loop: an edge. Resumes the waiting reader and writer inline on the loop thread.</summary>
    public void OnEvents(uint events)
    {
        if (_starter is { } starter)
        {
            // First edge of a connection started on its loop: start it before the edge wakes its (first) wait.
            _starter = null;
            var state = _starterState!;
            _starterState = null;
            starter(state);
        }

        if ((events & (EpollNative.EPOLLRDHUP | EpollNative.EPOLLHUP | EpollNative.EPOLLERR)) != 0)
        {
            Volatile.Write(ref _hangUp, 1);
        }

        if ((events & (EpollNative.EPOLLOUT | EpollNative.EPOLLHUP | EpollNative.EPOLLERR)) != 0)
        {
            _writer.Signal();
        }

        if ((events & (EpollNative.EPOLLIN | EpollNative.EPOLLRDHUP | EpollNative.EPOLLHUP | EpollNative.EPOLLERR)) != 0)
        {
            _reader.Signal();
        }
    }

    protected override void OnAborted()
    {
        // Wake whoever waits so they see the closed socket; not inline, the caller may be the heartbeat sweeping
        // every connection.
        ThreadPool.UnsafeQueueUserWorkItem(
            static connection =>
            {
                connection._writer.Signal();
                connection._reader.Signal();
            },
            this,
            preferLocal: false);
    }

    protected override ValueTask CompleteOutputAsync() => _writer.CompleteAsync();

    public override byte[] FormatRemoteAddress() => _remoteAddress;

    protected override void ShutdownSocket(SocketShutdown how) =>
        EpollNative.Shutdown(Handle, how == SocketShutdown.Receive ? EpollNative.ShutRd : EpollNative.ShutWr);

    protected override void CloseAbortively()
    {
        EpollNative.SetResetOnClose(Handle);
        CloseDescriptor();
    }

    /// <summary>Closes the descriptor, which also takes it out of the epoll set.</summary>
    private void CloseDescriptor() => Handle.Dispose();

    protected override ValueTask CloseGracefullyAsync(bool graceful)
    {
        if (graceful)
        {
            CloseDescriptor();
        }

        if (Volatile.Read(ref _registered) != 0)
        {
            _loop.Unregister(this);
        }

        return ValueTask.CompletedTask;
    }
}
