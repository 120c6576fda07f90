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
    /// <summary>IP:PORT to bind (IPv4 or <c>[IPv6]:port</c>). Port 0 asks the OS for a free port.</summary>
    public string Address { get; init; } = "";

    /// <summary>TLS termination on this listener; null means plain HTTP.</summary>
    public ListenerTlsConfig? Tls { get; init; }
}

/// <summary>TLS termination settings of a listener.</summary>
public sealed record ListenerTlsConfig
{
    /// <summary>Server certificates, chosen by SNI host name. At least one is required.</summary>
    public IReadOnlyList<ListenerCertificateConfig> Certificates { get; init; } = [];

    /// <summary>
    /// Index into <see cref="Certificates"/> of the certificate used when the client sends no SNI name or one that no
    /// certificate lists. Null means the first certificate.
    /// </summary>
    public int? DefaultCertificate { get; init; }

    /// <summary>
    /// When true, a handshake whose SNI name no certificate serves (or that sends no SNI) fails instead of getting
    /// the default certificate. Default false.
    /// </summary>
    public bool RejectUnknownSni { get; init; }
}

/// <summary>One server certificate of a TLS listener (PEM files).</summary>
public sealed record ListenerCertificateConfig
{
    /// <summary>Path of the PEM certificate (chain) file.</summary>
    public string CertFile { get; init; } = "";

    /// <summary>Path of the PEM private key file.</summary>
    public string KeyFile { get; init; } = "";

    /// <summary>SNI host names (exact or <c>*.suffix</c>) this certificate serves. Empty: only as the default certificate.</summary>
    public IReadOnlyList<string> Hosts { get; init; } = [];
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

    /// <summary>Limit on concurrent requests on this route; over it the router answers 503. Null means unlimited.</summary>
    public int? MaxConcurrentRequests { get; init; }
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

    /// <summary>
    /// Id of the cluster that serves when this cluster has no available destination. Fallbacks chain: a route whose
    /// cluster is unavailable uses the route's <see cref="RouteConfig.FallbackCluster"/> if given, else this one, and
    /// so on down each cluster's fallback. A chain that comes back to a cluster already in it is rejected.
    /// </summary>
    public string? FallbackCluster { get; init; }

    /// <summary>Passive health (outlier ejection) from live traffic; null disables it.</summary>
    public PassiveHealthConfig? PassiveHealth { get; init; }

    /// <summary>
    /// When every destination is unhealthy or ejected, send to all of them anyway instead of answering 503
    /// (Envoy's panic threshold, at 0%). Default false.
    /// </summary>
    public bool PanicMode { get; init; }

    /// <summary>Retries of idempotent requests that failed before any response byte; null disables retries.</summary>
    public RetryConfig? Retry { get; init; }

    /// <summary>TLS to the upstream destinations; null means plain HTTP.</summary>
    public UpstreamTlsConfig? Tls { get; init; }
}

/// <summary>Passive health: eject a destination after consecutive failed requests, for a while.</summary>
public sealed record PassiveHealthConfig
{
    /// <summary>Consecutive failed requests (connect errors, timeouts, 5xx) that eject a destination. Default 5.</summary>
    public int ConsecutiveFailures { get; init; } = 5;

    /// <summary>How long an ejected destination stays out. Default 30000 ms.</summary>
    public int EjectionMs { get; init; } = 30000;

    /// <summary>Most destinations, in percent of the cluster, that may be ejected at once (0..100). Default 50.</summary>
    public int MaxEjectionPercent { get; init; } = 50;
}

/// <summary>Retry policy with a retry budget so retries cannot multiply load during an outage.</summary>
public sealed record RetryConfig
{
    /// <summary>Whether retries happen. Default true (present record means on unless switched off).</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>Attempts per request including the first (1..10). Default 2.</summary>
    public int MaxAttempts { get; init; } = 2;

    /// <summary>Retries in flight allowed, in percent of requests in flight to the cluster (0..100). Default 20.</summary>
    public int BudgetPercent { get; init; } = 20;

    /// <summary>Retries in flight always allowed whatever the budget (Envoy's min_retry_concurrency). Default 3.</summary>
    public int MinConcurrent { get; init; } = 3;
}

/// <summary>TLS from the router to a cluster's destinations.</summary>
public sealed record UpstreamTlsConfig
{
    /// <summary>Whether to use TLS upstream. Default true (present record means on unless switched off).</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>SNI name and the name the server certificate must match; null uses the destination host.</summary>
    public string? ServerName { get; init; }

    /// <summary>PEM file of CA certificates to trust instead of the system store; null uses the system store.</summary>
    public string? CaFile { get; init; }

    /// <summary>PEM client certificate for mutual TLS; requires <see cref="ClientKeyFile"/>.</summary>
    public string? ClientCertFile { get; init; }

    /// <summary>PEM private key of <see cref="ClientCertFile"/>.</summary>
    public string? ClientKeyFile { get; init; }
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

    /// <summary>Lowest probe response status counted healthy (100..599). Default 200.</summary>
    public int ExpectedStatusMin { get; init; } = 200;

    /// <summary>Highest probe response status counted healthy (100..599, at least the minimum). Default 399.</summary>
    public int ExpectedStatusMax { get; init; } = 399;
}

/// <summary>Circuit breaker settings.</summary>
public sealed record CircuitBreakerConfig
{
    /// <summary>Consecutive failures that open the breaker.</summary>
    public int ConsecutiveFailures { get; init; } = 5;

    /// <summary>How long the breaker stays open before letting trial requests through.</summary>
    public int BreakMs { get; init; } = 10000;

    /// <summary>
    /// Failure ratio (greater than 0, at most 1) over <see cref="WindowMs"/> that also opens the breaker once
    /// <see cref="MinimumRequests"/> were seen in the window. Null (default) turns the ratio rule off.
    /// </summary>
    public double? FailureRatio { get; init; }

    /// <summary>Requests needed in the window before <see cref="FailureRatio"/> is judged. Default 20.</summary>
    public int MinimumRequests { get; init; } = 20;

    /// <summary>Sliding window of the failure ratio. Default 10000 ms.</summary>
    public int WindowMs { get; init; } = 10000;

    /// <summary>Concurrent trial requests let through while half-open; the first to succeed closes the breaker, the first to fail opens it again. Default 1.</summary>
    public int HalfOpenTrials { get; init; } = 1;
}
