using System.Text;
using Router.Core.Configuration;
using Router.Core.Health;
using Router.Core.LoadBalancing;
using Router.Core.Resilience;

namespace Router.Core.Routing;

/// <summary>A compiled cluster: its destinations and load-balancing policy.</summary>
/// <remarks>
/// <see cref="RoutingSnapshot.Compile"/> reuses the whole object across a reload when the cluster's config is
/// unchanged, so <see cref="InFlight"/> and the round-robin cursor carry over; otherwise a new one is built
/// (its destinations may still be reused).
/// </remarks>
internal sealed class ClusterState
{
    // previousLimit: the same cluster's gate in the config being replaced, kept when its limit is unchanged.
    public ClusterState(ClusterConfig config, DestinationState[] destinations, ConcurrencyLimit? previousLimit = null)
    {
        Config = config;
        Id = config.Id;
        IdUtf8 = Encoding.UTF8.GetBytes(config.Id);
        Destinations = destinations;
        LoadBalancer = LoadBalancingPolicies.Parse(config.LoadBalancing);
        Limit = ConcurrencyLimit.CarryOver(previousLimit, config.MaxConcurrentRequests);
        var detectors = new List<OutlierDetector>(destinations.Length);
        foreach (var destination in destinations)
        {
            destination.ConfigureGates(config);
            if (destination.Outlier is { } outlier)
            {
                detectors.Add(outlier);
            }
        }

        EjectionBudget = config.PassiveHealth is { } passive ? new EjectionBudget(detectors, passive.MaxEjectionPercent) : null;
        Retries = config.Retry is { Enabled: true } retry ? new RetryBudget(retry.BudgetPercent, retry.MinConcurrent) : null;
    }

    /// <summary>Concurrency limit of the cluster (unlimited when not configured).</summary>
    public ConcurrencyLimit Limit { get; }

    /// <summary>Caps how many destinations passive health may eject at once.</summary>
    public EjectionBudget? EjectionBudget { get; }

    /// <summary>Retry budget; null when retries are off for this cluster.</summary>
    public RetryBudget? Retries { get; }

    public ClusterConfig Config { get; }

    public string Id { get; }

    /// <summary><see cref="Id"/> as UTF-8, for the data plane to write without encoding.</summary>
    public byte[] IdUtf8 { get; }

    public DestinationState[] Destinations { get; }

    /// <summary>How <see cref="LoadBalancer.Pick{TFilter}(ClusterState, TFilter)"/> chooses among destinations.</summary>
    public LoadBalancingPolicy LoadBalancer { get; }

    /// <summary>Requests in flight to this cluster (for its concurrency limit).</summary>
    public int InFlight;

    /// <summary>Round-robin cursor.</summary>
    public int RoundRobinCursor;
}
