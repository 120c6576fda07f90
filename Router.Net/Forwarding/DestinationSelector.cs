using Router.Core.LoadBalancing;
using Router.Core.Resilience;
using Router.Core.Routing;

namespace Router.Net.Forwarding;

/// <summary>The destination chosen for an attempt, with the cluster whose limit it holds.</summary>
internal readonly record struct Selection(ClusterState? Cluster, DestinationState? Destination, BreakerPermit Permit, ShedReason Shed);

/// <summary>
/// Chooses where a request goes: the primary cluster, then its fallbacks, among destinations that are healthy, not
/// ejected and breaker-closed; panic mode as the last resort. Records outcomes into the same gates. All state is local.
/// </summary>
internal static class DestinationSelector
{
    /// <summary>
    /// Picks the destination for an attempt, never one of the first <paramref name="excludedCount"/> entries of
    /// <paramref name="excluded"/> (the destinations this request already tried).
    /// </summary>
    public static Selection Select(CompiledRoute route, DestinationState?[]? excluded, int excludedCount)
    {
        var shed = ShedReason.NoDestination;
        var exclude = new AvailableExcept(excluded, excludedCount);
        var selection = TryCluster(route.Cluster, exclude, ref shed);
        if (selection.Destination is not null)
        {
            return selection;
        }

        foreach (var fallback in route.Fallbacks)
        {
            selection = TryCluster(fallback, exclude, ref shed);
            if (selection.Destination is not null)
            {
                return selection;
            }
        }

        // Panic mode: when nothing anywhere is available, spread over every destination rather than refuse
        // (health data can be wrong all at once, e.g. a broken health endpoint). Off by default.
        var primary = route.Cluster;
        if (primary.Config.PanicMode && primary.Limit.TryEnter())
        {
            var any = LoadBalancer.Pick(primary, default(AllDestinations));
            if (any is not null)
            {
                return new Selection(primary, any, default, shed);
            }

            primary.Limit.Exit();
        }

        return new Selection(null, null, default, shed);
    }

    private static Selection TryCluster(ClusterState cluster, AvailableExcept exclude, ref ShedReason shed)
    {
        if (!cluster.Limit.TryEnter())
        {
            shed = ShedReason.Cluster;
            return default;
        }

        // The pick filters on availability, but the breaker decides only in TryAcquire, and in between a concurrent
        // request can take the last half-open trial slot (or the breaker can open). Giving up then would send the
        // request to a fallback or a 503 while another destination is healthy: pass over the refusing one and pick
        // again. The destination count bounds the passes, whatever the breakers do meanwhile.
        int passes = cluster.Destinations.Length;
        for (int pass = 0; pass < passes; pass++)
        {
            var destination = exclude.IsEmpty
                ? LoadBalancer.PickAvailable(cluster)
                : LoadBalancer.Pick(cluster, exclude);
            if (destination is null)
            {
                break;
            }

            BreakerPermit permit = default;
            if (destination.Breaker is not { } breaker || breaker.TryAcquire(MonotonicClock.NowMs, out permit))
            {
                return new Selection(cluster, destination, permit, shed);
            }

            exclude = exclude.PassingOver(destination);
        }

        cluster.Limit.Exit();
        return default;
    }

    /// <summary>Feeds an attempt's outcome to the destination's breaker and passive health.</summary>
    public static void Record(ClusterState cluster, DestinationState destination, UpstreamOutcome outcome, BreakerPermit permit)
    {
        switch (outcome)
        {
            case UpstreamOutcome.Success:
                destination.Breaker?.OnSuccess(permit);
                destination.Outlier?.OnSuccess();
                break;
            case UpstreamOutcome.ServerError:
            case UpstreamOutcome.ConnectFailed:
            case UpstreamOutcome.ConnectTimeout:
            case UpstreamOutcome.NoResponse:
            case UpstreamOutcome.ResponseTimeout:
            case UpstreamOutcome.BadResponse:
            case UpstreamOutcome.StreamBroken:
                long now = MonotonicClock.NowMs;
                destination.Breaker?.OnFailure(now, permit);
                destination.Outlier?.OnFailure(now, cluster.EjectionBudget);
                break;
            default:
                // Client-side or local outcomes say nothing about the destination's health. A trial permit
                // left unreported is handed out again after breakMs (CircuitBreaker's safety net).
                break;
        }
    }

    /// <summary>
    /// Available destinations other than the request's tried ones and the one a breaker refused on the last pass.
    /// One refused slot is enough: a refused destination that looks available again on a later pass has changed
    /// state since, so asking its breaker again is fair.
    /// </summary>
    private readonly struct AvailableExcept : IDestinationFilter
    {
        private readonly DestinationState?[]? _excluded;
        private readonly int _count;
        private readonly DestinationState? _refused;

        public AvailableExcept(DestinationState?[]? excluded, int count)
            : this(excluded, excluded is null ? 0 : count, null)
        {
        }

        private AvailableExcept(DestinationState?[]? excluded, int count, DestinationState? refused)
        {
            _excluded = excluded;
            _count = count;
            _refused = refused;
        }

        public bool IsEmpty => _count == 0 && _refused is null;

        public AvailableExcept PassingOver(DestinationState refused) => new(_excluded, _count, refused);

        public bool Allows(DestinationState destination)
        {
            if (ReferenceEquals(destination, _refused))
            {
                return false;
            }

            for (int i = 0; i < _count; i++)
            {
                if (ReferenceEquals(destination, _excluded![i]))
                {
                    return false;
                }
            }

            return destination.IsAvailable;
        }
    }
}
