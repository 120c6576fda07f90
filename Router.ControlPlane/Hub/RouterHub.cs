using System.Net.WebSockets;
using Router.ControlPlane.Api;
using Router.ControlPlane.Store;
using Router.Core.ControlPlane;

namespace Router.ControlPlane.Hub;

/// <summary>
/// The <c>/ws/router</c> endpoint: authenticates the upgrade, waits for <c>hello</c>, then keeps the router on the
/// newest config version and records its ack/nack/heartbeat frames in the <see cref="FleetStatus"/>.
/// </summary>
internal sealed partial class RouterHub
{
    private const string ShuttingDownReason = "control plane shutting down";

    /// <summary>How long a router gets to answer the shutdown close frame before its session is cut.</summary>
    private static readonly TimeSpan ShutdownCloseGrace = TimeSpan.FromSeconds(2);

    private readonly ConfigStore _store;
    private readonly FleetStatus _fleet;
    private readonly ControlPlaneOptions _options;
    private readonly ILogger<RouterHub> _logger;
    private readonly Lock _gate = new();
    private readonly Dictionary<long, RouterSession> _sessions = [];
    private long _nextSessionId;

    public RouterHub(ConfigStore store, FleetStatus fleet, ControlPlaneOptions options, ILogger<RouterHub> logger)
    {
        _store = store;
        _fleet = fleet;
        _options = options;
        _logger = logger;
        _store.Published += Publish;
    }

    /// <summary>Connected sessions (for tests and diagnostics).</summary>
    public int SessionCount
    {
        get
        {
            lock (_gate)
            {
                return _sessions.Count;
            }
        }
    }

    /// <summary>Bytes the connected sessions' receive buffers hold now (for tests and diagnostics).</summary>
    public long ReceiveBufferBytes
    {
        get
        {
            long total = 0;
            lock (_gate)
            {
                foreach (var session in _sessions.Values)
                {
                    total += session.Received.Capacity;
                }
            }

            return total;
        }
    }

    public async Task HandleAsync(HttpContext context, CancellationToken stopping)
    {
        // The token is checked before the upgrade: an unauthenticated client gets a plain 401 and no frame at all.
        if (!BearerToken.Matches(context.Request, _options.RouterToken))
        {
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            return;
        }

        if (!context.WebSockets.IsWebSocketRequest)
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            return;
        }

        using var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
        {
            KeepAliveInterval = _options.KeepAliveInterval,
            KeepAliveTimeout = _options.ReceiveTimeout,
        });
        // Not linked to `stopping`: cancelling a pending receive aborts the socket (RST, no close frame). On shutdown
        // the session sends a close frame instead, then gives the router ShutdownCloseGrace to answer it.
        using var session = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        using var onStopping = stopping.Register(static state => _ = CloseForShutdownAsync(((WebSocket, CancellationTokenSource))state!), (socket, session));
        var remote = context.Connection.RemoteIpAddress is { } ip ? ip + ":" + context.Connection.RemotePort : null;
        var closeStatus = WebSocketCloseStatus.NormalClosure;
        try
        {
            await RunSessionAsync(socket, remote, session, stopping);
        }
        catch (InvalidDataException ex)
        {
            // An oversized frame: tell the router why (1009) rather than a normal close.
            LogSessionEnded(_logger, remote, ex.Message);
            closeStatus = WebSocketCloseStatus.MessageTooBig;
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or IOException)
        {
            LogSessionEnded(_logger, remote, ex.Message);
        }
        finally
        {
            await CloseQuietlyAsync(socket, stopping.IsCancellationRequested ? ShuttingDownReason
                : closeStatus == WebSocketCloseStatus.MessageTooBig ? $"frame larger than {ControlPlaneCodec.MaxFrameBytes} bytes" : "bye", closeStatus);
        }
    }

    private async Task RunSessionAsync(WebSocket socket, string? remote, CancellationTokenSource session, CancellationToken stopping)
    {
        using var buffer = new FrameBuffer();
        if (!stopping.IsCancellationRequested)
        {
            session.CancelAfter(_options.ReceiveTimeout);
        }
        if (!await ReceiveFrameAsync(socket, buffer, session.Token)
            || !TryParseAndClear(buffer, out var first, out _)
            || first is not HelloMessage hello
            || string.IsNullOrWhiteSpace(hello.NodeId))
        {
            await CloseQuietlyAsync(socket, "expected hello", WebSocketCloseStatus.PolicyViolation);
            return;
        }

        var router = new RouterSession(Interlocked.Increment(ref _nextSessionId), hello.NodeId, socket, buffer);
        lock (_gate)
        {
            _sessions.Add(router.Id, router);
        }

        // Registered before reading Current: a version published in between reaches the session either way,
        // and Offer ignores anything older than what it already holds.
        var current = _store.Current;
        var upToDate = current is not null && hello.ConfigHash == current.Hash;
        _fleet.Connected(router.Id, hello.NodeId, hello.RouterVersion, remote, upToDate ? current!.Version : hello.ConfigVersion, hello.ConfigHash);
        LogHello(_logger, hello.NodeId, remote, hello.ConfigVersion, upToDate);
        if (current is not null)
        {
            if (upToDate)
            {
                router.MarkAlreadyHas(current.Version);
            }
            else
            {
                router.Offer(current);
            }
        }

        var sendLoop = SendUntilFailureAsync(router, session);
        try
        {
            await ReceiveLoopAsync(socket, router, buffer, session, stopping);
        }
        finally
        {
            lock (_gate)
            {
                _sessions.Remove(router.Id);
            }

            _fleet.Disconnected(router.Id, router.NodeId);
            LogDisconnected(_logger, router.NodeId, remote);
            await session.CancelAsync();
            try
            {
                await sendLoop;
            }
            catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or IOException)
            {
                // The receive side already decided the session is over.
            }
        }
    }

    /// <summary>Runs the send loop; a failed send ends the whole session (the receive side is cancelled too).</summary>
    private async Task SendUntilFailureAsync(RouterSession router, CancellationTokenSource session)
    {
        try
        {
            await router.RunSendLoopAsync(_options.HeartbeatInterval, () => _store.Current?.Version, session.Token);
        }
        finally
        {
            await session.CancelAsync();
        }
    }

    private async Task ReceiveLoopAsync(WebSocket socket, RouterSession router, FrameBuffer buffer, CancellationTokenSource session, CancellationToken stopping)
    {
        while (true)
        {
            // No frame (heartbeat included) for 3 heartbeat intervals: the router is gone. While shutting down the
            // shorter close grace set by CloseForShutdownAsync stands.
            if (!stopping.IsCancellationRequested)
            {
                session.CancelAfter(_options.ReceiveTimeout);
            }

            if (!await ReceiveFrameAsync(socket, buffer, session.Token))
            {
                return;
            }

            if (!TryParseAndClear(buffer, out var message, out var error))
            {
                LogBadFrame(_logger, router.NodeId, error ?? "unknown");
                continue;
            }

            switch (message)
            {
                case AckMessage ack:
                    _fleet.Acked(router.Id, router.NodeId, ack.Version, ack.Hash);
                    LogAck(_logger, router.NodeId, ack.Version);
                    break;
                case NackMessage nack:
                    _fleet.Nacked(router.Id, router.NodeId, nack.Version, nack.Errors ?? []);
                    LogNack(_logger, router.NodeId, nack.Version, nack.Errors?.Count ?? 0);
                    break;
                default:
                    _fleet.Seen(router.Id, router.NodeId);
                    break;
            }
        }
    }

    private void Publish(StoredConfig config)
    {
        lock (_gate)
        {
            foreach (var session in _sessions.Values)
            {
                session.Offer(config);
            }
        }
    }

    private static async ValueTask<bool> ReceiveFrameAsync(WebSocket socket, FrameBuffer buffer, CancellationToken ct)
    {
        buffer.Clear();
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer.GetFree(), ct);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return false;
            }

            buffer.Advance(result.Count);
            if (buffer.WrittenCount > ControlPlaneCodec.MaxFrameBytes)
            {
                throw new InvalidDataException($"a router frame exceeded {ControlPlaneCodec.MaxFrameBytes} bytes");
            }

            if (result.EndOfMessage)
            {
                return true;
            }
        }
    }

    /// <summary>
    /// Parses the frame just received, then empties the buffer: the array a large frame needed goes back now, not when
    /// the next frame arrives (a heartbeat interval or more later). The message holds no reference to the buffer.
    /// </summary>
    private static bool TryParseAndClear(FrameBuffer buffer, out ControlPlaneMessage? message, out string? error)
    {
        bool parsed = ControlPlaneCodec.TryParse(buffer.WrittenSpan, out message, out error);
        buffer.Clear();
        return parsed;
    }

    /// <summary>Shutdown: a polite close frame now; the receive loop ends when the router answers it, or after the grace.</summary>
    private static async Task CloseForShutdownAsync((WebSocket Socket, CancellationTokenSource Session) state)
    {
        await CloseQuietlyAsync(state.Socket, ShuttingDownReason);
        try
        {
            state.Session.CancelAfter(ShutdownCloseGrace);
        }
        catch (ObjectDisposedException)
        {
            // The session already ended.
        }
    }

    private static async Task CloseQuietlyAsync(WebSocket socket, string reason, WebSocketCloseStatus status = WebSocketCloseStatus.NormalClosure)
    {
        if (socket.State is not (WebSocketState.Open or WebSocketState.CloseReceived))
        {
            return;
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await socket.CloseOutputAsync(status, reason, timeout.Token);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException or ObjectDisposedException)
        {
            // Best effort: the router may already be gone.
        }
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Information, Message = "Router {NodeId} connected from {Remote} running version {Version} (up to date: {UpToDate})")]
    private static partial void LogHello(ILogger logger, string nodeId, string? remote, long? version, bool upToDate);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "Router {NodeId} ({Remote}) disconnected")]
    private static partial void LogDisconnected(ILogger logger, string nodeId, string? remote);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Information, Message = "Router {NodeId} applied version {Version}")]
    private static partial void LogAck(ILogger logger, string nodeId, long version);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Warning, Message = "Router {NodeId} rejected version {Version} with {ErrorCount} error(s)")]
    private static partial void LogNack(ILogger logger, string nodeId, long version, int errorCount);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Warning, Message = "Ignored a malformed frame from router {NodeId}: {Error}")]
    private static partial void LogBadFrame(ILogger logger, string nodeId, string error);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Information, Message = "Router session from {Remote} ended: {Reason}")]
    private static partial void LogSessionEnded(ILogger logger, string? remote, string reason);
}
