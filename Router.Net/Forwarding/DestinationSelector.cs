using Router.Core.Routing;

namespace Router.Net.Forwarding;

/// <summary>Chooses a destination of a cluster by its load-balancing policy among the available ones.</summary>
internal static class DestinationSelector
{
    public static DestinationState? Pick(ClusterState cluster)
    {
        // TEMP until the LoadBalancing merge: round robin over all destinations.
        var destinations = cluster.Destinations;
        if (destinations.Length == 0)
        {
            return null;
        }

        uint next = (uint)Interlocked.Increment(ref cluster.RoundRobinCursor);
        return destinations[(int)(next % (uint)destinations.Length)];
    }
}
