namespace Router.Net.ControlPlane;

/// <summary>Settings of <see cref="ControlPlaneClient"/>. Defaults suit a fleet of routers talking to one control plane.</summary>
internal sealed class ControlPlaneClientOptions
{
    /// <summary>The hub address, <c>ws://host:port/ws/router</c> or <c>wss://...</c>.</summary>
    public required Uri Uri { get; init; }

    /// <summary>True for a URI a session can be opened with: absolute, <c>ws://</c> or <c>wss://</c>.</summary>
    public static bool IsHubUri(Uri uri) => uri.IsAbsoluteUri && uri.Scheme is "ws" or "wss";

    /// <summary>Router token, sent as <c>Authorization: Bearer</c> on the upgrade.</summary>
    public required string Token { get; init; }

    /// <summary>This router's id in the fleet status.</summary>
    public required string NodeId { get; init; }

    /// <summary>Where the last-known-good config is persisted; null disables the cache.</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>PEM file of CA certificates to trust for <c>wss://</c> (instead of the system store); null uses the system store.</summary>
    public string? CaFile { get; init; }

    /// <summary>
    /// How often a heartbeat frame is sent. No frame at all from the CP for 3x this means the peer is dead.
    /// Default 10 s, the CP's default heartbeat interval too.
    /// </summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>WebSocket ping interval (protocol-level keepalive, also keeps NAT/LB idle timers open). Default 15 s.</summary>
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>First reconnect delay ceiling; doubles per failed attempt (full jitter). Default 250 ms.</summary>
    public TimeSpan BackoffBase { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Largest reconnect delay. Default 30 s, so a fleet returning after a CP outage spreads out.</summary>
    public TimeSpan BackoffCap { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Time allowed for TCP connect + TLS + upgrade. Default 10 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Reported in <c>hello</c>.</summary>
    public string RouterVersion { get; init; } = typeof(ControlPlaneClientOptions).Assembly.GetName().Version?.ToString() ?? "0.0.0";

    /// <summary>Silence longer than this from the CP means it is gone.</summary>
    internal TimeSpan ReceiveTimeout => HeartbeatInterval * 3;
}
