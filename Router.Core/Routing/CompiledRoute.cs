using System.Text;
using Router.Core.Configuration;
using Router.Core.Resilience;

namespace Router.Core.Routing;

/// <summary>A route as the data plane uses it: its clusters resolved, its strings pre-encoded.</summary>
internal sealed class CompiledRoute
{
    // previousLimit: the same route's gate in the config being replaced, kept when its limit is unchanged.
    public CompiledRoute(RouteConfig config, ClusterState cluster, ClusterState? fallback, ClusterState[]? fallbacks = null, ConcurrencyLimit? previousLimit = null)
    {
        Fallbacks = fallbacks ?? (fallback is null ? [] : [fallback]);
        Limit = ConcurrencyLimit.CarryOver(previousLimit, config.MaxConcurrentRequests);
        Config = config;
        Id = config.Id;
        IdUtf8 = Encoding.UTF8.GetBytes(config.Id);
        Cluster = cluster;
        Fallback = fallback;
    }

    public RouteConfig Config { get; }

    public string Id { get; }

    /// <summary><see cref="Id"/> as UTF-8, for the data plane to write without encoding.</summary>
    public byte[] IdUtf8 { get; }

    public ClusterState Cluster { get; }

    public ClusterState? Fallback { get; }

    /// <summary>
    /// Clusters to try, in order, when the primary has no available destination: the route's fallback, then each
    /// cluster's own <c>fallbackCluster</c> in turn (the validator rejects loops; repeats are skipped).
    /// </summary>
    public ClusterState[] Fallbacks { get; }

    /// <summary>The data plane's per-route metrics, attached when the snapshot goes live (Router.Net owns the type).</summary>
    public object? Metrics { get; set; }

    /// <summary>Concurrency limit of the route (unlimited when not configured).</summary>
    public ConcurrencyLimit Limit { get; }

    /// <summary>Response-header timeout for this route: the route override or the cluster's.</summary>
    public int ResponseTimeoutMs => Config.TimeoutMs ?? Cluster.Config.ResponseTimeoutMs;
}
