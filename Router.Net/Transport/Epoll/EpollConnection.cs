using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

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
    private readonly byte[]? _remoteAddress;
    private int _registered;
    private int _hangUp;

    /// <summary>An accepted connection: a descriptor from accept4 (already non-blocking), no runtime <see cref="Socket"/>.</summary>
    /// <param name="handle">The connection's descriptor, owned from now on.</param>
    /// <param name="remoteAddress">The peer's address as text (<see cref="AddressText"/>).</param>
    /// <param name="loop">The loop serving it.</param>
    public EpollConnection(SafeSocketHandle handle, byte[] remoteAddress, EpollLoop loop)
        : base(socket: null, inputPipe: false)
    {
        Handle = handle;
        _remoteAddress = remoteAddress;
        EpollNative.SetNoDelay(handle);
        _loop = loop;
        _receiveThread = loop.ThreadId;
        _reader = new EpollReader(this, handle);
        _writer = new EpollWriter(this, handle);
    }

    /// <summary>An upstream connection: a runtime socket that began a non-blocking connect (<see cref="ConnectAsync"/>).</summary>
    private EpollConnection(Socket socket, EpollLoop loop)
        : base(socket, inputPipe: false)
    {
        socket.NoDelay = true;
        Handle = socket.SafeHandle;
        _loop = loop;
        _receiveThread = loop.ThreadId;
        _reader = new EpollReader(this, Handle);
        _writer = new EpollWriter(this, Handle);
    }

    /// <summary>Slot and generation in the loop's table (the epoll data word).</summary>
    public ulong Token { get; set; }

    public SafeSocketHandle Handle { get; }

    public override PipeReader Input => _reader;

    public override PipeWriter Output => _writer;

    /// <summary>
    /// Aborted, or the peer closed or reset: the reader saw the end, or epoll reported a hang-up. An idle pooled
    /// upstream connection learns of its close from the hang-up edge, without anyone reading.
    /// </summary>
    /// <summary>Epoll reported the peer's FIN, a reset or an error.</summary>
    public bool HungUp => Volatile.Read(ref _hangUp) != 0;

    public override bool IsClosed => Aborted || _reader.Ended || Volatile.Read(ref _hangUp) != 0;

    /// <summary>
    /// Nobody reads an idle pooled connection, so ask the kernel: free when no edge came since its last response was
    /// read; otherwise one peek at the socket (an edge can also be a late one for bytes already read).
    /// </summary>
    public override bool IsIdleClean() => !IsClosed && _reader.IsIdleClean();

    /// <summary>
    /// Connects to <paramref name="endPoint"/> without blocking, on <paramref name="loop"/> (pass the caller's loop so
    /// the exchange stays on one thread). Throws <see cref="SocketException"/> when refused, <see cref="TimeoutException"/>
    /// after <paramref name="timeoutMs"/>.
    /// </summary>
    public static async ValueTask<EpollConnection> ConnectAsync(IPEndPoint endPoint, int timeoutMs, EpollLoop loop)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { Blocking = false };
        try
        {
            socket.Connect(endPoint);
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
        {
            // Connecting: the first write edge says it finished; SO_ERROR and a hang-up say whether it failed.
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        // (Socket.Blocking was needed for the non-blocking connect; upstream connections are few, so its context is fine.)
        var connection = new EpollConnection(socket, loop);
        try
        {
            connection.Start();
            await connection._writer.WaitWritableAsync(0).AsTask().WaitAsync(TimeSpan.FromMilliseconds(timeoutMs)).ConfigureAwait(false);
            int errno = EpollNative.PendingError(connection.Handle);
            if (errno != 0 || connection.HungUp)
            {
                // A refused connect reports an error and a hang-up edge; SO_ERROR may already have been read back.
                throw new SocketException((int)(errno > 0 ? EpollNative.ToSocketError(errno) : SocketError.ConnectionRefused));
            }
        }
        catch
        {
            connection.Abort("connect failed");
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return connection;
    }

    /// <summary>Registers with the loop (once); from then on edges arrive.</summary>
    public override void Start()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 0)
        {
            _loop.Register(this);
        }
    }

    /// <summary>From the loop: an edge. Resumes the waiting reader and writer inline on the loop thread.</summary>
    public void OnEvents(uint events)
    {
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

    public override byte[] FormatRemoteAddress() => _remoteAddress ?? base.FormatRemoteAddress();

    internal override void ShutdownReceive() => EpollNative.Shutdown(Handle, EpollNative.ShutRd);

    internal override void ShutdownSend() => EpollNative.Shutdown(Handle, EpollNative.ShutWr);

    protected override void CloseAbortively()
    {
        EpollNative.SetResetOnClose(Handle);
        CloseDescriptor();
    }

    /// <summary>Closes the descriptor (which also takes it out of the epoll set), through the socket when there is one.</summary>
    private void CloseDescriptor()
    {
        if (_socket is not null)
        {
            _socket.Dispose();
        }
        else
        {
            Handle.Dispose();
        }
    }

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
