using System.Net;
using Microsoft.Extensions.Logging;

namespace Router.Net;

/// <summary>Settings of a <see cref="RouterServer"/>. Read once, when the server is created.</summary>
public sealed class RouterServerOptions
{
    private TimeSpan _drainTimeout = TimeSpan.FromSeconds(30);
    private RouterLimits _limits = RouterLimits.Default;

    /// <summary>
    /// Proxy listeners (plain HTTP). Port 0 binds a free port; <see cref="RouterState.ListenEndPoints"/> tells which.
    /// Listeners named in the config live at start are added to these.
    /// </summary>
    public IList<IPEndPoint> Listen { get; } = [];

    /// <summary>
    /// Admin listener (<c>/healthz</c>, <c>/ready</c>, <c>/admin/config</c>, <c>/metrics</c>, ...); null (the default)
    /// runs none. Bind it to loopback: it is not authenticated.
    /// </summary>
    public IPEndPoint? Admin { get; set; }

    /// <summary>Request parsing and connection limits. Default <see cref="RouterLimits.Default"/>.</summary>
    public RouterLimits Limits
    {
        get => _limits;
        set => _limits = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>How long in-flight requests get to finish when the server is disposed without an explicit stop. 30 s, as Kubernetes' default grace period.</summary>
    public TimeSpan DrainTimeout
    {
        get => _drainTimeout;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.Zero);
            _drainTimeout = value;
        }
    }

    /// <summary>Where the router logs; null logs nothing.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>
    /// Config sources, started by <see cref="RouterServer.StartAsync"/> in this order and stopped with the server.
    /// Each applies configs as they come; the most recent valid one is live.
    /// </summary>
    public IList<ConfigSource> Sources { get; } = [];

    /// <summary>Adds a config source; returns these options so calls chain.</summary>
    /// <param name="source">The source to add.</param>
    public RouterServerOptions AddSource(ConfigSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        Sources.Add(source);
        return this;
    }
}
