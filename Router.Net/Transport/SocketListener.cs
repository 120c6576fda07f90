using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Router.Net.Transport.Epoll;

namespace Router.Net.Transport;

/// <summary>What a listener hands each accepted socket to.</summary>
internal interface IConnectionHandler
{
    /// <summary>
    /// Takes ownership of an accepted socket. Must not block: start the connection's work and return. A handler that
    /// throws has not taken the connection: the listener closes it (and, when gated, takes its slot back).
    /// </summary>
    void OnConnection(Socket socket);

    /// <summary>
    /// Like <see cref="OnConnection(Socket)"/>, for a listener with a <see cref="ConnectionGate"/>: the handler must call
    /// <paramref name="closed"/> exactly once when the connection is closed. Handlers that don't track connections
    /// close nothing early, so the default releases the slot when the socket is handed over.
    /// </summary>
    void OnConnection(Socket socket, Action closed)
    {
        OnConnection(socket);
        closed();
    }

    /// <summary>
    /// True when the handler takes plain connections already made on the epoll transport
    /// (<see cref="OnConnection(ITransportConnection, Action?)"/>): the listener then accepts with accept4 on an epoll
    /// loop (<see cref="EpollAcceptor"/>) and no runtime <see cref="Socket"/> is made per connection.
    /// </summary>
    bool TakesEpollConnections => false;

    /// <summary>Takes ownership of an accepted epoll connection; <paramref name="closed"/> as for the gated overload.</summary>
    void OnConnection(ITransportConnection connection, Action? closed) =>
        throw new NotSupportedException("This handler takes sockets.");
}

/// <summary>Accepts sockets on one endpoint and hands them to a handler.</summary>
/// <remarks>
/// Two ways to accept: the runtime's <see cref="Socket.AcceptAsync()"/> loop, or, for handlers that take epoll
/// connections, accept4 on an epoll loop (<see cref="EpollAcceptor"/>).
/// </remarks>
internal sealed partial class SocketListener : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly IConnectionHandler _handler;
    private readonly ILogger _logger;
    private readonly ConnectionGate? _gate;
    private readonly Action? _release;
    private readonly CancellationTokenSource _stopping = new();
    private Task _acceptTask = Task.CompletedTask;
    private EpollAcceptor? _acceptor;
    private int _stopped;

    /// <summary>Binds <paramref name="endPoint"/>; accepted sockets go to <paramref name="handler"/>. <paramref name="gate"/> caps open
    /// connections (at the cap, accepting pauses until one closes); null: no cap. <paramref name="logger"/>: accept failures.</summary>
    public SocketListener(IPEndPoint endPoint, IConnectionHandler handler, ILogger logger, ConnectionGate? gate = null)
    {
        _handler = handler;
        _logger = logger;
        _gate = gate;
        _release = gate is null ? null : gate.Release;
        _socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (endPoint.AddressFamily == AddressFamily.InterNetworkV6 && endPoint.Address.Equals(IPAddress.IPv6Any))
        {
            _socket.DualMode = true;
        }

        _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        try
        {
            _socket.Bind(endPoint);
        }
        catch (SocketException ex)
        {
            _socket.Dispose();
            throw new IOException($"cannot listen on {endPoint}: {ex.Message}", ex);
        }

        EndPoint = (IPEndPoint)_socket.LocalEndPoint!;
    }

    /// <summary>The bound endpoint (with the real port when 0 was asked for).</summary>
    public IPEndPoint EndPoint { get; }

    public void Start()
    {
        _socket.Listen(1024);
        if (_handler.TakesEpollConnections)
        {
            _acceptor = new EpollAcceptor(
                _socket,
                _handler,
                _gate,
                error => LogAcceptFailed(_logger, EndPoint, error),
                ex => LogHandlerFailed(_logger, ex));
            _acceptor.Start();
        }
        else
        {
            DescriptorReserve.TryRestore();
            _acceptTask = AcceptLoopAsync();
        }
    }

    /// <summary>Returns once the descriptor reserve is whole again (its timer takes it back), checking every 50 ms, or the listener stops.</summary>
    private async Task WaitForReserveAsync()
    {
        do
        {
            await Task.Delay(50).ConfigureAwait(false);
        }
        while (!DescriptorReserve.IsWhole && Volatile.Read(ref _stopped) == 0);
    }

    private async Task AcceptLoopAsync()
    {
        while (Volatile.Read(ref _stopped) == 0)
        {
            if (_gate is not null)
            {
                // At the connection cap: stop calling accept (the kernel backlog holds newcomers) until a slot frees.
                try
                {
                    await _gate.WaitAsync(_stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }

            if (!DescriptorReserve.IsWhole)
            {
                // Out of descriptors a moment ago (an accept, an upstream connect, anything): wait for the reserve.
                await WaitForReserveAsync().ConfigureAwait(false);
            }

            Socket accepted;
            try
            {
                accepted = await _socket.AcceptAsync().ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                _gate?.Release();
                break;
            }
            catch (SocketException ex) when (Volatile.Read(ref _stopped) != 0 || ex.SocketErrorCode == SocketError.OperationAborted)
            {
                _gate?.Release();
                break;
            }
            catch (SocketException ex)
            {
                // Transient (EMFILE, ECONNABORTED): log and keep accepting. Out of descriptors or memory, the
                // connection stays in the backlog and the next accept would fail at once: pause rather than spin.
                _gate?.Release();
                LogAcceptFailed(_logger, EndPoint, ex.SocketErrorCode);
                if (ex.SocketErrorCode is SocketError.TooManyOpenSockets)
                {
                    // The runtime gets the reserve while we wait (DescriptorReserve says why).
                    DescriptorReserve.Release();
                    await WaitForReserveAsync().ConfigureAwait(false);
                }
                else if (ex.SocketErrorCode is SocketError.NoBufferSpaceAvailable)
                {
                    await Task.Delay(50).ConfigureAwait(false);
                }

                continue;
            }

            if (!DescriptorReserve.HasHeadroom())
            {
                // This accept took the last descriptors the runtime's threads can spare. Give it the reserve now,
                // before this connection's continuations may need a thread (the next accept would fail only after
                // them); serve the connection, and accept again once the reserve is back.
                DescriptorReserve.Release();
                LogOutOfDescriptors(_logger, EndPoint, SocketError.TooManyOpenSockets);
            }

            try
            {
                if (_release is null)
                {
                    _handler.OnConnection(accepted);
                }
                else
                {
                    _handler.OnConnection(accepted, _release);
                }
            }
            catch (Exception ex)
            {
                // A handler that throws did not take the connection, so nothing else will give its slot back.
                LogHandlerFailed(_logger, ex);
                accepted.Dispose();
                _gate?.Release();
            }
        }
    }

    /// <summary>Stops accepting. Established connections are not touched.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        _acceptor?.Stop();
        _socket.Dispose();
        await _acceptTask.ConfigureAwait(false);
        _stopping.Dispose();
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "Accept on {EndPoint} failed: {Error}")]
    private static partial void LogAcceptFailed(ILogger logger, IPEndPoint endPoint, SocketError error);

    [LoggerMessage(EventId = 101, Level = LogLevel.Error, Message = "Connection handler failed")]
    private static partial void LogHandlerFailed(ILogger logger, Exception ex);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "Accepting on {EndPoint} pauses: {Error} (the last descriptors were taken)")]
    private static partial void LogOutOfDescriptors(ILogger logger, IPEndPoint endPoint, SocketError error);
}
