using Router.Core.Configuration;

namespace Router.Core.Routing;

/// <summary>A compiled cluster: its destinations and load-balancing policy.</summary>
internal sealed class ClusterState
{
    public ClusterState(ClusterConfig config, DestinationState[] destinations)
    {
        Config = config;
        Id = config.Id;
        Destinations = destinations;
    }

    public ClusterConfig Config { get; }

    public string Id { get; }

    public DestinationState[] Destinations { get; }

    /// <summary>Requests in flight to this cluster (for its concurrency limit).</summary>
    public int InFlight;

    /// <summary>Round-robin cursor.</summary>
    public int RoundRobinCursor;
}
