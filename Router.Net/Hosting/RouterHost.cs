using System.Net;
using Microsoft.Extensions.Logging;
using Router.Core.Configuration;
using Router.Core.Routing;
using Router.Net.Admin;
using Router.Net.Forwarding;
using Router.Net.Health;
using Router.Net.Observability;
using Router.Net.Http1;
using Router.Net.Tls;
using Router.Net.Transport;

namespace Router.Net.Hosting;

/// <summary>Settings of a router instance.</summary>
internal sealed class RouterHostOptions
{
    /// <summary>Proxy listeners (plain HTTP). Port 0 binds an ephemeral port (tests).</summary>
    public List<IPEndPoint> Listen { get; } = [];

    /// <summary>TLS listeners from the command line (<c>--listen-tls</c>), all serving <see cref="TlsCertificate"/>.</summary>
    public List<IPEndPoint> ListenTls { get; } = [];

    /// <summary>Certificate of the <see cref="ListenTls"/> listeners (<c>--cert/--key</c>, PEM); reloaded with the config.</summary>
    public ListenerCertificateConfig? TlsCertificate { get; set; }

    /// <summary>Handshake timeout and concurrent-handshake limit of every TLS listener.</summary>
    public TlsHandshakeLimits TlsLimits { get; set; } = TlsHandshakeLimits.Default;

    /// <summary>Admin listener; loopback by default so admin endpoints are not exposed.</summary>
    public IPEndPoint? Admin { get; set; }

    public HttpLimits Limits { get; set; } = HttpLimits.Default;

    /// <summary>
    /// Most open client connections over all proxy listeners; past it accepting pauses (newcomers wait in the kernel
    /// backlog) until one closes, instead of accepting and failing. 10,000, as the order of nginx's worker_connections
    /// x a few workers, and comfortably under the 65,536 file descriptors a router process is usually given (each
    /// proxied connection can hold a second, upstream descriptor). Null: no cap.
    /// </summary>
    public int? MaxClientConnections { get; set; } = 10_000;

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
    private readonly List<SocketListener> _tlsListeners = [];
    private bool _listening;
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
        Runtime = new ProxyRuntime(Table, options.Limits, _heartbeat, loggerFactory)
        {
            Connections = options.MaxClientConnections is { } max ? new ConnectionGate(max) : null,
        };
        _health = new HealthCheckCoordinator(loggerFactory, Runtime.UpstreamTls.For);
        Metrics = new RouterMetrics(Runtime, () => ControlPlaneStatus?.AppliedVersion, () => ControlPlaneStatus?.Connected ?? false);
        Runtime.Metrics = Metrics;
        Exporter = new PrometheusExporter(Metrics.Meter);
        if (options.AccessLogPath is not null)
        {
            Runtime.AccessLog = AccessLog.Open(options.AccessLogPath, loggerFactory.CreateLogger("Router.AccessLog"));
        }

        Certificates = new ListenerCertificates(options.TlsLimits, loggerFactory.CreateLogger("Router.Tls"));
        Metrics.AddTls(Certificates);
        if (options.TlsCertificate is { } certificate)
        {
            Certificates.CommandLine = new ListenerTlsConfig { Certificates = [certificate] };
        }

        // Certificate, key and CA files are part of a config's validity: a bad one rejects the config (the old
        // certificates keep serving), a good one is loaded before the swap so the first handshake finds it ready.
        Applier.ExtraValidation = config =>
        {
            var errors = new List<ConfigError>(Certificates.Validate(config));
            errors.AddRange(Runtime.UpstreamTls.Validate(config));
            return errors;
        };
        Applier.Applied += (next, _) =>
        {
            Metrics.OnConfigApplied(next);
            Metrics.CountReload(applied: true);
            Runtime.OnConfigApplied(next);
            _health.OnConfigApplied(next);
            Certificates.Activate(next.Config);
        };
        Applier.Rejected += _ => Metrics.CountReload(applied: false);
        Applier.Reaffirmed += current => Certificates.Activate(current.Config);
    }

    public RoutingTable Table { get; }

    public RouterMetrics Metrics { get; }

    /// <summary>Renders <see cref="Metrics"/> for <c>GET /metrics</c>.</summary>
    public PrometheusExporter Exporter { get; }

    public ConfigApplier Applier { get; }

    public ProxyRuntime Runtime { get; }

    /// <summary>Server certificates of the TLS listeners, reloaded with the config.</summary>
    public ListenerCertificates Certificates { get; }

    /// <summary>What <c>POST /admin/reload</c> and SIGHUP do; null when there is nothing to reload from.</summary>
    public Func<ApplyOutcome>? Reload { get; set; }

    /// <summary>Extra lines for <c>/admin/config</c> and <c>/metrics</c> from optional parts (control-plane client).</summary>
    public IStatusContributor? ControlPlaneStatus { get; set; }

    /// <summary>Bound plain-HTTP proxy endpoints.</summary>
    public IReadOnlyList<IPEndPoint> ListenEndPoints => _listeners.ConvertAll(l => l.EndPoint);

    /// <summary>Bound HTTPS proxy endpoints (command line first, then config order).</summary>
    public IReadOnlyList<IPEndPoint> TlsListenEndPoints => _tlsListeners.ConvertAll(l => l.EndPoint);

    public IPEndPoint? AdminEndPoint => _admin?.EndPoint;

    public DateTimeOffset StartedAt { get; } = DateTimeOffset.UtcNow;

    public ILoggerFactory LoggerFactory => _loggerFactory;

    /// <summary>Binds and starts every listener. Listeners named in the live config are added to the options' ones.</summary>
    public void Start()
    {
        // Admin first: once the proxy answers, /ready and /admin/config answer too.
        if (_options.Admin is not null)
        {
            _admin = new AdminServer(_options.Admin, this, _loggerFactory.CreateLogger("Router.Listener"));
            Metrics.AddAdmin(_admin);
            _admin.Start();
        }

        var endPoints = new List<IPEndPoint>(_options.Listen);
        var tlsEndPoints = new List<(IPEndPoint EndPoint, string Name, ListenerTlsConfig Tls, bool CommandLine)>();
        if (Certificates.CommandLine is { } commandLine)
        {
            foreach (var endPoint in _options.ListenTls)
            {
                tlsEndPoints.Add((endPoint, "--listen-tls " + endPoint, commandLine, true));
            }
        }

        var config = Table.Current?.Config;
        if (config is not null)
        {
            foreach (var listener in config.Listeners)
            {
                if (!IPEndPoint.TryParse(listener.Address, out var ep))
                {
                    continue;
                }

                if (listener.Tls is { } tls)
                {
                    tlsEndPoints.Add((ep, listener.Address, tls, false));
                }
                else if (!endPoints.Contains(ep))
                {
                    endPoints.Add(ep);
                }
            }
        }

        var logger = _loggerFactory.CreateLogger("Router.Listener");
        var handler = new ProxyConnectionHandler(Runtime);
        foreach (var endPoint in endPoints)
        {
            var listener = new SocketListener(endPoint, handler, logger, Runtime.Connections);
            listener.Start();
            _listeners.Add(listener);
        }

        foreach (var (endPoint, name, tls, fromCommandLine) in tlsEndPoints)
        {
            var context = Certificates.Create(name, tls, fromCommandLine);
            var listener = new SocketListener(endPoint, new ProxyConnectionHandler(Runtime, context), logger, Runtime.Connections);
            listener.Start();
            _tlsListeners.Add(listener);
        }

        Volatile.Write(ref _listening, true);
    }

    /// <summary>
    /// True once every proxy listener accepts. The admin listener starts first, so /ready waits for this: a readiness
    /// probe must not send traffic to a port that still refuses it.
    /// </summary>
    public bool Listening => Volatile.Read(ref _listening);

    /// <summary>Stops accepting, lets in-flight requests finish up to the drain timeout (or until <paramref name="drainNow"/>), closes the rest.</summary>
    public async Task StopAsync(TimeSpan? drainTimeout = null, CancellationToken drainNow = default)
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        // Not ready from the first moment: /ready must not say "ready" while the listeners below are closing and
        // the proxy port already refuses connections.
        Runtime.MarkShuttingDown();
        foreach (var listener in _listeners)
        {
            await listener.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var listener in _tlsListeners)
        {
            await listener.DisposeAsync().ConfigureAwait(false);
        }

        await Runtime.DrainAsync(drainTimeout ?? _options.DrainTimeout, drainNow).ConfigureAwait(false);
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
