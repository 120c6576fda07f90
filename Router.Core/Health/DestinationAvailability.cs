using System.Runtime.CompilerServices;
using Router.Core.Resilience;

namespace Router.Core.Health;

/// <summary>The load balancer's availability filter: one place that combines every gate on a destination.</summary>
internal static class DestinationAvailability
{
    /// <summary>
    /// True when the destination may be picked: actively healthy, not ejected, and its breaker lets traffic through.
    /// A null gate means that mechanism is not configured. A few volatile reads; no writes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsAvailable(HealthState? health, OutlierDetector? outlier, CircuitBreaker? breaker, long nowMs)
        => (health is null || health.IsHealthy)
            && (outlier is null || !outlier.IsEjected(nowMs))
            && (breaker is null || breaker.AllowsTraffic(nowMs));
}
