using Router.Core.Routing;

namespace Router.Core.LoadBalancing;

/// <summary>
/// Picks a destination by the cluster's <see cref="ClusterState.LoadBalancer"/> policy. Lock-free and allocation-free:
/// counters are read with <see cref="Volatile"/> and advanced with <see cref="Interlocked"/>, filters are structs.
/// </summary>
internal static class LoadBalancer
{
    /// <summary>Picks among the cluster's available destinations; null when none is available.</summary>
    public static DestinationState? PickAvailable(ClusterState cluster) => Pick(cluster, default(AvailableDestinations));

    /// <summary>Picks among <paramref name="candidates"/>, all of which the caller considers eligible.</summary>
    public static DestinationState? Pick(ClusterState cluster, ReadOnlySpan<DestinationState> candidates) =>
        Pick(cluster, candidates, default(AllDestinations));

    /// <summary>Picks among the cluster's destinations that <paramref name="filter"/> allows; null when none.</summary>
    public static DestinationState? Pick<TFilter>(ClusterState cluster, TFilter filter)
        where TFilter : struct, IDestinationFilter =>
        Pick(cluster, cluster.Destinations, filter);

    /// <summary>Picks among the <paramref name="candidates"/> that <paramref name="filter"/> allows; null when none.</summary>
    public static DestinationState? Pick<TFilter>(ClusterState cluster, ReadOnlySpan<DestinationState> candidates, TFilter filter)
        where TFilter : struct, IDestinationFilter
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return cluster.LoadBalancer switch
        {
            LoadBalancingPolicy.LeastRequests => LeastRequests(candidates, filter),
            LoadBalancingPolicy.PowerOfTwoChoices => PowerOfTwoChoices(candidates, filter),
            _ => RoundRobin(cluster, candidates, filter),
        };
    }

    private static DestinationState? RoundRobin<TFilter>(ClusterState cluster, ReadOnlySpan<DestinationState> candidates, TFilter filter)
        where TFilter : struct, IDestinationFilter
    {
        // Counting first and then taking the n-th allowed one cycles evenly over whatever is available;
        // skipping ahead from the cursor instead would double the load on the neighbour of a down destination.
        var count = CountAllowed(candidates, filter);
        if (count == 0)
        {
            return null;
        }

        var cursor = (uint)(Interlocked.Increment(ref cluster.RoundRobinCursor) - 1);
        return NthAllowed(candidates, filter, (int)(cursor % (uint)count));
    }

    private static DestinationState? LeastRequests<TFilter>(ReadOnlySpan<DestinationState> candidates, TFilter filter)
        where TFilter : struct, IDestinationFilter
    {
        DestinationState? best = null;
        var bestInFlight = int.MaxValue;
        foreach (var destination in candidates)
        {
            if (!filter.Allows(destination))
            {
                continue;
            }

            var inFlight = Volatile.Read(ref destination.InFlight);
            if (best is null || inFlight < bestInFlight)
            {
                best = destination;
                bestInFlight = inFlight;
            }
        }

        return best;
    }

    private static DestinationState? PowerOfTwoChoices<TFilter>(ReadOnlySpan<DestinationState> candidates, TFilter filter)
        where TFilter : struct, IDestinationFilter
    {
        var count = CountAllowed(candidates, filter);
        if (count <= 1)
        {
            return count == 0 ? null : NthAllowed(candidates, filter, 0);
        }

        var first = Random.Shared.Next(count);
        var second = Random.Shared.Next(count - 1);
        if (second >= first)
        {
            second++;  // two distinct indexes, uniformly
        }

        var a = NthAllowed(candidates, filter, first);
        var b = NthAllowed(candidates, filter, second);
        if (a is null || b is null)
        {
            return a ?? b;  // availability changed between the passes
        }

        return Volatile.Read(ref b.InFlight) < Volatile.Read(ref a.InFlight) ? b : a;
    }

    private static int CountAllowed<TFilter>(ReadOnlySpan<DestinationState> candidates, TFilter filter)
        where TFilter : struct, IDestinationFilter
    {
        var count = 0;
        foreach (var destination in candidates)
        {
            if (filter.Allows(destination))
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>
    /// The <paramref name="n"/>-th allowed candidate. Availability can change between the count and this pass;
    /// then it returns the last allowed one before running out, or null if none is allowed any more.
    /// </summary>
    private static DestinationState? NthAllowed<TFilter>(ReadOnlySpan<DestinationState> candidates, TFilter filter, int n)
        where TFilter : struct, IDestinationFilter
    {
        DestinationState? last = null;
        foreach (var destination in candidates)
        {
            if (filter.Allows(destination))
            {
                if (n-- == 0)
                {
                    return destination;
                }

                last = destination;
            }
        }

        return last;
    }
}
