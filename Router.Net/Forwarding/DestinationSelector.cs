using Router.Core.LoadBalancing;
using Router.Core.Routing;

namespace Router.Net.Forwarding;

/// <summary>Chooses a destination of a cluster by its load-balancing policy among the available ones.</summary>
internal static class DestinationSelector
{
    public static DestinationState? Pick(ClusterState cluster) => LoadBalancer.PickAvailable(cluster);
}
