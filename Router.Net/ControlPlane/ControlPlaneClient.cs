using System.Net;
using System.Net.Security;
using System.Net.WebSockets;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Router.Core.Configuration;
using Router.Core.ControlPlane;

namespace Router.Net.ControlPlane;

/// <summary>Connection state of <see cref="ControlPlaneClient"/>, for admin endpoints and metrics.</summary>
internal enum ControlPlaneState
{
    Disconnected,
    Connecting,
    Connected,
}

/// <summary>
/// Keeps a router subscribed to the control plane: connects, says hello, applies every pushed config through the
/// <see cref="IConfigSink"/>, persists it as last-known-good, and answers ack/nack. Runs entirely in the background;
/// routing never waits on it. A lost connection is retried forever with capped exponential backoff and full jitter.
/// </summary>
internal sealed partial class ControlPlaneClient : IAsyncDisposable
{
    private const string SinkSource = "control-plane";

    private readonly ControlPlaneClientOptions _options;
    private readonly IConfigSink _sink;
    private readonly ILogger _logger;
    private readonly X509Certificate2Collection? _trustedRoots;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly object _gate = new();
    private CancellationTokenSource? _stopping;
    private Task? _loop;
    private volatile ControlPlaneState _state;
    private volatile string? _lastError;
    private AppliedConfig? _applied;
    private long _connectCount;
    private FrameBuffer? _received;

    public ControlPlaneClient(ControlPlaneClientOptions options, IConfigSink sink, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(sink);
        _options = options;
        _sink = sink;
        _logger = logger ?? NullLogger.Instance;
        if (options.CaFile is not null)
        {
            _trustedRoots = [];
            _trustedRoots.ImportFromPemFile(options.CaFile);
            if (_trustedRoots.Count == 0)
            {
                throw new ArgumentException($"no certificate found in CA file '{options.CaFile}'", nameof(options));
            }
        }
    }

    /// <summary>Raised (on a background thread) whenever <see cref="State"/> changes.</summary>
    public event Action<ControlPlaneState>? StateChanged;

    /// <summary>Current connection state.</summary>
    public ControlPlaneState State => _state;

    /// <summary>Why the last connection failed or the last config was rejected; null when all is well.</summary>
    public string? LastError => _lastError;

    /// <summary>The control-plane version this client last applied; null before the first.</summary>
    public long? AppliedVersion => Volatile.Read(ref _applied)?.Version;

    /// <summary>Hash of the config this client last applied; null before the first.</summary>
    public string? AppliedHash => Volatile.Read(ref _applied)?.Hash;

    /// <summary>Bytes the current session's receive buffer holds (0 before the first session).</summary>
    internal int ReceiveBufferBytes => Volatile.Read(ref _received)?.Capacity ?? 0;

    /// <summary>How many times the WebSocket upgrade succeeded.</summary>
    public long ConnectCount => Interlocked.Read(ref _connectCount);

    /// <summary>Starts the background loop. Returns at once.</summary>
    public void Start()
    {
        lock (_gate)
        {
            if (_loop is not null)
            {
                throw new InvalidOperationException("the client is already started");
            }

            _stopping = new CancellationTokenSource();
            _loop = Task.Run(() => RunAsync(_stopping.Token));
        }
    }

    /// <summary>Stops the loop, closing the connection politely if one is open.</summary>
    public async Task StopAsync()
    {
        Task? loop;
        lock (_gate)
        {
            loop = _loop;
            _stopping?.Cancel();
        }

        if (loop is not null)
        {
            await loop.ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stopping?.Dispose();
        _sendLock.Dispose();
    }

    /// <summary>Full-jitter backoff: uniform in [0, min(cap, base * 2^attempt)).</summary>
    internal static TimeSpan ComputeBackoff(int attempt, TimeSpan backoffBase, TimeSpan cap, double random0To1)
    {
        var ceiling = Math.Min(cap.TotalMilliseconds, backoffBase.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 30)));
        return TimeSpan.FromMilliseconds(ceiling * random0To1);
    }

    private async Task RunAsync(CancellationToken stopping)
    {
        var attempt = 0;
        while (!stopping.IsCancellationRequested)
        {
            SetState(ControlPlaneState.Connecting);
            try
            {
                await RunSessionAsync(() => attempt = 0, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                _lastError = ex.Message;
                LogSessionEnded(_logger, _options.Uri, ex.Message);
            }

            SetState(ControlPlaneState.Disconnected);
            var delay = ComputeBackoff(attempt++, _options.BackoffBase, _options.BackoffCap, Random.Shared.NextDouble());
            try
            {
                await Task.Delay(delay, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        SetState(ControlPlaneState.Disconnected);
    }

    private async Task RunSessionAsync(Action connected, CancellationToken stopping)
    {
        using var ws = new ClientWebSocket();
        ws.Options.SetRequestHeader("Authorization", "Bearer " + _options.Token);
        ws.Options.KeepAliveInterval = _options.KeepAliveInterval;
        ws.Options.KeepAliveTimeout = _options.ReceiveTimeout;
        ws.Options.CollectHttpResponseDetails = true;
        if (_trustedRoots is not null)
        {
            ws.Options.RemoteCertificateValidationCallback = ValidateServerCertificate;
        }

        using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(stopping))
        {
            connectTimeout.CancelAfter(_options.ConnectTimeout);
            try
            {
                await ws.ConnectAsync(_options.Uri, connectTimeout.Token).ConfigureAwait(false);
            }
            catch (WebSocketException ex) when (ws.HttpStatusCode == HttpStatusCode.Unauthorized)
            {
                throw new UnauthorizedAccessException("the control plane refused the router token (401)", ex);
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
                throw new TimeoutException($"connecting to {_options.Uri} took longer than {_options.ConnectTimeout}");
            }
        }

        Interlocked.Increment(ref _connectCount);
        _lastError = null;
        SetState(ControlPlaneState.Connected);
        LogConnected(_logger, _options.Uri);

        using var session = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        var (version, hash) = _sink.Current;
        await SendAsync(ws, new HelloMessage(_options.NodeId, _options.RouterVersion, version, hash), session.Token).ConfigureAwait(false);
        var heartbeats = HeartbeatLoopAsync(ws, session.Token);
        try
        {
            await ReceiveLoopAsync(ws, session, connected, stopping).ConfigureAwait(false);
        }
        finally
        {
            await session.CancelAsync().ConfigureAwait(false);
            try
            {
                await heartbeats.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or ObjectDisposedException)
            {
                // The receive side already decided the session is over.
            }

            await CloseQuietlyAsync(ws).ConfigureAwait(false);
        }
    }

    /// <remarks>
    /// <paramref name="accepted"/> (which resets the reconnect backoff) runs on the first frame the CP sends after the
    /// hello, not on the upgrade: a CP that accepts and then drops every session must still be retried with backoff.
    /// </remarks>
    private async Task ReceiveLoopAsync(ClientWebSocket ws, CancellationTokenSource session, Action accepted, CancellationToken stopping)
    {
        using var buffer = new FrameBuffer();
        Volatile.Write(ref _received, buffer);
        while (true)
        {
            // Any frame (config, heartbeat) proves the CP alive; CancelAfter re-arms the same timer each time.
            session.CancelAfter(_options.ReceiveTimeout);
            bool gotFrame;
            try
            {
                gotFrame = await ReceiveFrameAsync(ws, buffer, session.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
                throw new TimeoutException($"no frame from the control plane for {_options.ReceiveTimeout.TotalSeconds:0.#} s");
            }

            if (!gotFrame)
            {
                throw new WebSocketException($"the control plane closed the connection ({ws.CloseStatus} {ws.CloseStatusDescription})");
            }

            session.CancelAfter(Timeout.InfiniteTimeSpan);

            // Cleared once parsed, so the array a large config needed goes back now rather than when the next frame
            // (a heartbeat interval later) arrives. The message holds no reference to the buffer.
            bool parsed = ControlPlaneCodec.TryParse(buffer.WrittenSpan, out var message, out var error);
            buffer.Clear();
            if (!parsed)
            {
                LogBadFrame(_logger, error ?? "unknown");
                continue;
            }

            accepted();

            if (message is ConfigMessage config)
            {
                await HandleConfigAsync(ws, config, session.Token).ConfigureAwait(false);
            }

            // Heartbeats only reset the timer; anything else from the CP is not for a router.
        }
    }

    private async Task HandleConfigAsync(ClientWebSocket ws, ConfigMessage config, CancellationToken ct)
    {
        var json = config.ConfigUtf8();
        ConfigApplyResult result;
        try
        {
            result = _sink.Apply(json, SinkSource, config.Version);
        }
        catch (Exception ex)
        {
            result = new ConfigApplyResult(false, "", null, [new ConfigError("$", "the router failed to apply the config: " + ex.Message)]);
        }

        if (!result.Applied)
        {
            _lastError = $"config version {config.Version} rejected with {result.Errors.Count} error(s)";
            LogRejected(_logger, config.Version, result.Errors.Count);
            await SendAsync(ws, new NackMessage(config.Version, config.Hash, result.Errors), ct).ConfigureAwait(false);
            return;
        }

        Volatile.Write(ref _applied, new AppliedConfig(config.Version, result.Hash));
        _lastError = null;
        LogApplied(_logger, config.Version, result.Hash);
        if (_options.CacheDirectory is not null)
        {
            try
            {
                LastKnownGoodCache.Save(_options.CacheDirectory, json, config.Version, result.Hash);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // The config is live; only the restart-while-CP-down story is weakened. Say so, keep going.
                _lastError = "could not persist last-known-good: " + ex.Message;
                LogCacheFailed(_logger, _options.CacheDirectory, ex.Message);
            }
        }

        await SendAsync(ws, new AckMessage(config.Version, result.Hash), ct).ConfigureAwait(false);
    }

    private async Task HeartbeatLoopAsync(ClientWebSocket ws, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(_options.HeartbeatInterval);
        while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
        {
            var version = AppliedVersion ?? _sink.Current.Version;
            await SendAsync(ws, new HeartbeatMessage(version), ct).ConfigureAwait(false);
        }
    }

    private async Task SendAsync(ClientWebSocket ws, ControlPlaneMessage message, CancellationToken ct)
    {
        var frame = ControlPlaneCodec.Serialize(message);
        await _sendLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await ws.SendAsync(frame, WebSocketMessageType.Text, endOfMessage: true, ct).ConfigureAwait(false);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Reads one whole message into <paramref name="buffer"/>; false when the peer closed.</summary>
    private static async ValueTask<bool> ReceiveFrameAsync(WebSocket ws, FrameBuffer buffer, CancellationToken ct)
    {
        buffer.Clear();
        while (true)
        {
            var result = await ws.ReceiveAsync(buffer.GetFree(), ct).ConfigureAwait(false);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return false;
            }

            buffer.Advance(result.Count);
            if (buffer.WrittenCount > ControlPlaneCodec.MaxFrameBytes)
            {
                throw new InvalidDataException($"a control-plane frame exceeded {ControlPlaneCodec.MaxFrameBytes} bytes");
            }

            if (result.EndOfMessage)
            {
                return true;
            }
        }
    }

    private static async Task CloseQuietlyAsync(ClientWebSocket ws)
    {
        if (ws.State is not (WebSocketState.Open or WebSocketState.CloseReceived))
        {
            return;
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException or ObjectDisposedException)
        {
            // Best effort: the peer may already be gone.
        }
    }

    /// <summary>With a CA file, the server's chain must end at one of its certificates; the host name must match either way.</summary>
    private bool ValidateServerCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null || (errors & (SslPolicyErrors.RemoteCertificateNotAvailable | SslPolicyErrors.RemoteCertificateNameMismatch)) != 0)
        {
            return false;
        }

        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(_trustedRoots!);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null)
        {
            // Intermediates the server sent.
            foreach (var element in chain.ChainElements)
            {
                custom.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return custom.Build(leaf);
    }

    private void SetState(ControlPlaneState state)
    {
        if (_state == state)
        {
            return;
        }

        _state = state;
        StateChanged?.Invoke(state);
    }

    private sealed record AppliedConfig(long Version, string Hash);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Connected to control plane {Uri}")]
    private static partial void LogConnected(ILogger logger, Uri uri);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Control plane session with {Uri} ended: {Reason}")]
    private static partial void LogSessionEnded(ILogger logger, Uri uri, string reason);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Information, Message = "Applied control-plane config version {Version} ({Hash})")]
    private static partial void LogApplied(ILogger logger, long version, string hash);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Warning, Message = "Rejected control-plane config version {Version}: {ErrorCount} error(s)")]
    private static partial void LogRejected(ILogger logger, long version, int errorCount);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Warning, Message = "Ignored a malformed control-plane frame: {Error}")]
    private static partial void LogBadFrame(ILogger logger, string error);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Error, Message = "Could not persist last-known-good config in {CacheDir}: {Error}")]
    private static partial void LogCacheFailed(ILogger logger, string cacheDir, string error);
}
