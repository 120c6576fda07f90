using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Router.Net.ControlPlane;
using Router.Net.Hosting;

namespace Router.Net;

/// <summary>
/// Configs pushed by a control plane (<c>router-cp</c>) over its WebSocket hub: the router ACKs each one it applies
/// and NACKs each one it rejects (with every error), reconnecting with backoff when the connection drops. With a
/// <see cref="CacheDirectory"/>, every applied config is persisted and, at start, the cached one is applied before the
/// control plane answers, so the router routes through a control-plane outage (source <c>cache</c>).
/// Configs pushed show as source <c>control-plane</c> with the control plane's version.
/// </summary>
public sealed class ControlPlaneConfigSource : ConfigSource
{
    private volatile ControlPlaneClient? _client;

    /// <summary>Creates a source for the control plane at <paramref name="uri"/>.</summary>
    /// <param name="uri">The hub address, <c>ws://host:port/ws/router</c> or <c>wss://...</c>.</param>
    /// <param name="token">Router token, sent as <c>Authorization: Bearer</c> on the upgrade.</param>
    /// <exception cref="ArgumentException"><paramref name="uri"/> is not an absolute <c>ws://</c> or <c>wss://</c> URI
    /// (no session could ever be opened with it), or <paramref name="token"/> is empty.</exception>
    public ControlPlaneConfigSource(Uri uri, string token)
    {
        ArgumentNullException.ThrowIfNull(uri);
        if (!ControlPlaneClientOptions.IsHubUri(uri))
        {
            throw new ArgumentException($"'{uri}' is not a ws:// or wss:// URI", nameof(uri));
        }

        ArgumentException.ThrowIfNullOrWhiteSpace(token);
        Uri = uri;
        Token = token;
    }

    /// <summary>The hub address.</summary>
    public Uri Uri { get; }

    /// <summary>Router token.</summary>
    public string Token { get; }

    /// <summary>This router's id in the control plane's fleet status. Default: the machine name.</summary>
    public string NodeId { get; init; } = Environment.MachineName;

    /// <summary>Where the last-known-good config is persisted and loaded from at start; null (the default) disables the cache.</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>PEM file of CA certificates to trust for <c>wss://</c> instead of the system store; null uses the system store.</summary>
    public string? CaFile { get; init; }

    /// <summary>True while connected to the control plane.</summary>
    public bool IsConnected => _client?.State == ControlPlaneState.Connected;

    /// <summary>Why the last connection failed or the last pushed config was rejected; null when all is well.</summary>
    public string? LastError => _client?.LastError;

    /// <inheritdoc />
    public override async Task RunAsync(IConfigTarget target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        var server = target as RouterServer;
        IConfigSink sink = server is not null ? server.Host.Applier : new ConfigTargetApplyPath(target);
        var loggerFactory = server?.LoggerFactory ?? NullLoggerFactory.Instance;

        // Boot from last-known-good: what the fleet last agreed on, available before (or without) the control plane.
        if (CacheDirectory is not null && target.State.Config is null
            && LastKnownGoodCache.TryLoad(CacheDirectory, out var cached, out long? version, out _))
        {
            target.Apply(cached, "cache", version);
        }

        var options = new ControlPlaneClientOptions
        {
            Uri = Uri,
            Token = Token,
            NodeId = NodeId,
            CacheDirectory = CacheDirectory,
            CaFile = CaFile,
        };
        var client = new ControlPlaneClient(options, sink, loggerFactory.CreateLogger<ControlPlaneClient>());
        await using (client.ConfigureAwait(false))
        {
            _client = client;
            if (server is not null)
            {
                server.Host.ControlPlaneStatus = new ControlPlaneStatus(client, Uri);
            }

            client.Start();
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _client = null;
            }
        }
    }
}
