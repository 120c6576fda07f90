using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Router.Net.Transport;

/// <summary>What a listener hands each accepted socket to.</summary>
internal interface IConnectionHandler
{
    /// <summary>Takes ownership of an accepted socket. Must not block: start the connection's work and return.</summary>
    void OnConnection(Socket socket);
}

/// <summary>Accepts sockets on one endpoint and hands them to a handler.</summary>
internal sealed partial class SocketListener : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly IConnectionHandler _handler;
    private readonly ILogger _logger;
    private Task _acceptTask = Task.CompletedTask;
    private int _stopped;

    public SocketListener(IPEndPoint endPoint, IConnectionHandler handler, ILogger logger)
    {
        _handler = handler;
        _logger = logger;
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
        _acceptTask = AcceptLoopAsync();
    }

    private async Task AcceptLoopAsync()
    {
        while (Volatile.Read(ref _stopped) == 0)
        {
            Socket accepted;
            try
            {
                accepted = await _socket.AcceptAsync().ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                break;
            }
            catch (SocketException ex) when (Volatile.Read(ref _stopped) != 0 || ex.SocketErrorCode == SocketError.OperationAborted)
            {
                break;
            }
            catch (SocketException ex)
            {
                // Transient (EMFILE, ECONNABORTED): log and keep accepting.
                LogAcceptFailed(_logger, EndPoint, ex.SocketErrorCode);
                continue;
            }

            try
            {
                _handler.OnConnection(accepted);
            }
            catch (Exception ex)
            {
                LogHandlerFailed(_logger, ex);
                accepted.Dispose();
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

        _socket.Dispose();
        await _acceptTask.ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "Accept on {EndPoint} failed: {Error}")]
    private static partial void LogAcceptFailed(ILogger logger, IPEndPoint endPoint, SocketError error);

    [LoggerMessage(EventId = 101, Level = LogLevel.Error, Message = "Connection handler failed")]
    private static partial void LogHandlerFailed(ILogger logger, Exception ex);
}
