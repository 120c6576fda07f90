using System.Net;
using Microsoft.Extensions.Logging;
using Router.Core.Routing;
using Router.Net.Admin;
using Router.Net.Forwarding;
using Router.Net.Health;
using Router.Net.Observability;
using Router.Net.Http1;
using Router.Net.Transport;

namespace Router.Net.Hosting;

/// <summary>Settings of a router instance.</summary>
internal sealed class RouterHostOptions
{
    /// <summary>Proxy listeners (plain HTTP). Port 0 binds an ephemeral port (tests).</summary>
    public List<IPEndPoint> Listen { get; } = [];

    /// <summary>Admin listener; loopback by default so admin endpoints are not exposed.</summary>
    public IPEndPoint? Admin { get; set; }

    public HttpLimits Limits { get; set; } = HttpLimits.Default;

    /// <summary>How long in-flight requests get to finish on shutdown. 30 s, as Kubernetes' default grace period.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Access log file ("-" for standard output); null for none.</summary>
    public string? AccessLogPath { get; set; }

    /// <summary>Heartbeat period: the resolution of every timeout.</summary>
    public TimeSpan HeartbeatPeriod { get; set; } = TimeSpan.FromMilliseconds(250);
}

/// <summary>
/// One router: listeners, the live routing table and the config applier. Config sources (file watcher, control
/// plane, demo) feed <see cref="Applier"/>; the data plane reads <see cref="Table"/>.
/// </summary>
internal sealed class RouterHost : IAsyncDisposable
{
    private readonly RouterHostOptions _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly List<SocketListener> _listeners = [];
    private readonly Heartbeat _heartbeat;
    private readonly HealthCheckCoordinator _health;
    private AdminServer? _admin;
    private int _stopped;

    public RouterHost(RouterHostOptions options, ILoggerFactory loggerFactory)
    {
        _options = options;
        _loggerFactory = loggerFactory;
        Table = new RoutingTable();
        Applier = new ConfigApplier(Table, loggerFactory);
        _heartbeat = new Heartbeat(options.HeartbeatPeriod);
        Runtime = new ProxyRuntime(Table, options.Limits, _heartbeat, loggerFactory);
        _health = new HealthCheckCoordinator(loggerFactory);
        Metrics = new RouterMetrics(Runtime, () => ControlPlaneStatus?.AppliedVersion, () => ControlPlaneStatus?.Connected ?? false);
        Runtime.Metrics = Metrics;
        Exporter = new PrometheusExporter(RouterMetrics.MeterName);
        if (options.AccessLogPath is not null)
        {
            Runtime.AccessLog = AccessLog.Open(options.AccessLogPath, loggerFactory.CreateLogger("Router.AccessLog"));
        }

        Applier.Applied += (next, _) =>
        {
            Metrics.OnConfigApplied(next);
            Metrics.CountReload(applied: true);
            Runtime.OnConfigApplied(next);
            _health.OnConfigApplied(next);
        };
        Applier.Rejected += _ => Metrics.CountReload(applied: false);
    }

    public RoutingTable Table { get; }

    public RouterMetrics Metrics { get; }

    /// <summary>Renders <see cref="Metrics"/> for <c>GET /metrics</c>.</summary>
    public PrometheusExporter Exporter { get; }

    public ConfigApplier Applier { get; }

    public ProxyRuntime Runtime { get; }

    /// <summary>What <c>POST /admin/reload</c> and SIGHUP do; null when there is nothing to reload from.</summary>
    public Func<ApplyOutcome>? Reload { get; set; }

    /// <summary>Extra lines for <c>/admin/config</c> and <c>/metrics</c> from optional parts (control-plane client).</summary>
    public IStatusContributor? ControlPlaneStatus { get; set; }

    public IReadOnlyList<IPEndPoint> ListenEndPoints => _listeners.ConvertAll(l => l.EndPoint);

    public IPEndPoint? AdminEndPoint => _admin?.EndPoint;

    public DateTimeOffset StartedAt { get; } = DateTimeOffset.UtcNow;

    public ILoggerFactory LoggerFactory => _loggerFactory;

    /// <summary>Binds and starts every listener. Listeners named in the live config are added to the options' ones.</summary>
    public void Start()
    {
        var endPoints = new List<IPEndPoint>(_options.Listen);
        var config = Table.Current?.Config;
        if (config is not null)
        {
            foreach (var listener in config.Listeners)
            {
                if (IPEndPoint.TryParse(listener.Address, out var ep) && !endPoints.Contains(ep))
                {
                    endPoints.Add(ep);
                }
            }
        }

        var logger = _loggerFactory.CreateLogger("Router.Listener");
        var handler = new ProxyConnectionHandler(Runtime, https: false);
        foreach (var endPoint in endPoints)
        {
            var listener = new SocketListener(endPoint, handler, logger);
            listener.Start();
            _listeners.Add(listener);
        }

        if (_options.Admin is not null)
        {
            _admin = new AdminServer(_options.Admin, this, logger);
            _admin.Start();
        }
    }

    /// <summary>Stops accepting, lets in-flight requests finish up to the drain timeout, closes the rest.</summary>
    public async Task StopAsync(TimeSpan? drainTimeout = null)
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        foreach (var listener in _listeners)
        {
            await listener.DisposeAsync().ConfigureAwait(false);
        }

        await Runtime.DrainAsync(drainTimeout ?? _options.DrainTimeout).ConfigureAwait(false);
        if (_admin is not null)
        {
            await _admin.DisposeAsync().ConfigureAwait(false);
        }

        _heartbeat.Dispose();
        await _health.DisposeAsync().ConfigureAwait(false);
        Exporter.Dispose();
        Metrics.Dispose();
        if (Runtime.AccessLog is not null)
        {
            await Runtime.AccessLog.DisposeAsync().ConfigureAwait(false);
        }
        var snapshot = Table.Current;
        if (snapshot is not null)
        {
            foreach (var cluster in snapshot.Clusters)
            {
                foreach (var destination in cluster.Destinations)
                {
                    (Volatile.Read(ref destination.Pool) as UpstreamPool)?.Drain();
                }
            }
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync(TimeSpan.Zero).ConfigureAwait(false);
}

/// <summary>An optional part that reports its state on the admin endpoints.</summary>
internal interface IStatusContributor
{
    void WriteStatus(System.Text.Json.Utf8JsonWriter writer);

    /// <summary>True while connected to the control plane.</summary>
    bool Connected { get; }

    /// <summary>The last control-plane version applied, if any.</summary>
    long? AppliedVersion { get; }
}
