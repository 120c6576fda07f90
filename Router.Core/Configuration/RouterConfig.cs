namespace Router.Core.Configuration;

/// <summary>The whole router configuration: routes, clusters, listeners and global limits.</summary>
public sealed record RouterConfig
{
    /// <summary>Routes, matched by host, longest path prefix and method.</summary>
    public IReadOnlyList<RouteConfig> Routes { get; init; } = [];

    /// <summary>Clusters of upstream destinations that routes send to.</summary>
    public IReadOnlyList<ClusterConfig> Clusters { get; init; } = [];

    /// <summary>Listeners declared in the config; command-line <c>--listen</c> flags are added to them.</summary>
    public IReadOnlyList<ListenerConfig> Listeners { get; init; } = [];

    /// <summary>Global limit on concurrently proxied requests; over it the router answers 503. Null means unlimited.</summary>
    public int? MaxConcurrentRequests { get; init; }
}

/// <summary>A listener address, optionally with TLS.</summary>
public sealed record ListenerConfig
{
    /// <summary>IP:PORT to bind.</summary>
    public string Address { get; init; } = "";
}

/// <summary>One route: what it matches and which cluster serves it.</summary>
public sealed record RouteConfig
{
    /// <summary>Unique route id.</summary>
    public string Id { get; init; } = "";

    /// <summary>What requests this route matches.</summary>
    public RouteMatch Match { get; init; } = new();

    /// <summary>Id of the cluster that serves this route.</summary>
    public string Cluster { get; init; } = "";

    /// <summary>Id of the cluster that serves when the primary cluster has no available destination.</summary>
    public string? FallbackCluster { get; init; }

    /// <summary>Time allowed for the upstream to send response headers, overriding the cluster's.</summary>
    public int? TimeoutMs { get; init; }
}

/// <summary>The match criteria of a route. Every criterion given must hold.</summary>
public sealed record RouteMatch
{
    /// <summary>Exact host names or <c>*.suffix</c> wildcards, case-insensitive, port ignored. Empty matches any host.</summary>
    public IReadOnlyList<string> Hosts { get; init; } = [];

    /// <summary>Path prefix starting with '/'; the longest matching prefix wins. Defaults to "/".</summary>
    public string PathPrefix { get; init; } = "/";

    /// <summary>Allowed methods; empty allows any.</summary>
    public IReadOnlyList<string> Methods { get; init; } = [];
}

/// <summary>A cluster: a set of interchangeable destinations and the policies that apply to them.</summary>
public sealed record ClusterConfig
{
    /// <summary>Unique cluster id.</summary>
    public string Id { get; init; } = "";

    /// <summary>Upstream destinations.</summary>
    public IReadOnlyList<DestinationConfig> Destinations { get; init; } = [];

    /// <summary><c>roundRobin</c> (default), <c>leastRequests</c> or <c>powerOfTwoChoices</c>.</summary>
    public string LoadBalancing { get; init; } = "roundRobin";

    /// <summary>Active health checking; null disables it.</summary>
    public HealthCheckConfig? HealthCheck { get; init; }

    /// <summary>Per-destination circuit breaker; null disables it.</summary>
    public CircuitBreakerConfig? CircuitBreaker { get; init; }

    /// <summary>Limit on concurrent requests to this cluster; null means unlimited.</summary>
    public int? MaxConcurrentRequests { get; init; }

    /// <summary>Maximum open upstream connections per destination; null means unlimited.</summary>
    public int? MaxConnectionsPerDestination { get; init; }

    /// <summary>Upstream connect timeout. Default 5000 ms.</summary>
    public int ConnectTimeoutMs { get; init; } = 5000;

    /// <summary>Time allowed for the upstream to send response headers. Default 30000 ms.</summary>
    public int ResponseTimeoutMs { get; init; } = 30000;

    /// <summary>Idle time allowed while streaming a body in either direction. Default 60000 ms.</summary>
    public int IdleTimeoutMs { get; init; } = 60000;
}

/// <summary>One upstream destination.</summary>
public sealed record DestinationConfig
{
    /// <summary>IP:PORT or host:port of the upstream.</summary>
    public string Address { get; init; } = "";
}

/// <summary>Active health check settings.</summary>
public sealed record HealthCheckConfig
{
    /// <summary>Path probed with GET.</summary>
    public string Path { get; init; } = "/healthz";

    /// <summary>Probe interval.</summary>
    public int IntervalMs { get; init; } = 5000;

    /// <summary>Probe timeout.</summary>
    public int TimeoutMs { get; init; } = 2000;

    /// <summary>Consecutive failures that mark a destination down.</summary>
    public int UnhealthyThreshold { get; init; } = 3;

    /// <summary>Consecutive successes that mark a destination up again.</summary>
    public int HealthyThreshold { get; init; } = 2;
}

/// <summary>Circuit breaker settings.</summary>
public sealed record CircuitBreakerConfig
{
    /// <summary>Consecutive failures that open the breaker.</summary>
    public int ConsecutiveFailures { get; init; } = 5;

    /// <summary>How long the breaker stays open before letting trial requests through.</summary>
    public int BreakMs { get; init; } = 10000;
}
