using System.Net;

namespace Router.ControlPlane;

/// <summary>Everything <c>router-cp</c> needs to start; built from the command line or by tests.</summary>
internal sealed class ControlPlaneOptions
{
    /// <summary>Address Kestrel binds. Default 127.0.0.1:7000; port 0 picks a free port.</summary>
    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, 7000);

    /// <summary>Directory of the versioned config store.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>Token routers present on the WebSocket upgrade.</summary>
    public required string RouterToken { get; init; }

    /// <summary>Token the admin API requires.</summary>
    public required string AdminToken { get; init; }

    /// <summary>Config stored as version 1 when the store is empty; ignored otherwise.</summary>
    public string? InitialConfigFile { get; init; }

    /// <summary>PEM certificate (chain) for TLS; with <see cref="KeyFile"/>, the listener serves HTTPS/WSS only.</summary>
    public string? CertFile { get; init; }

    /// <summary>PEM private key for <see cref="CertFile"/>.</summary>
    public string? KeyFile { get; init; }

    /// <summary>How often a heartbeat frame goes to each router. Default 10 s (the router's default too).</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>WebSocket ping interval. Default 15 s.</summary>
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Minimum log level (tests turn it down).</summary>
    public LogLevel MinimumLogLevel { get; init; } = LogLevel.Information;

    /// <summary>No frame from a router for this long (3 heartbeats) marks it disconnected.</summary>
    internal TimeSpan ReceiveTimeout => HeartbeatInterval * 3;
}
