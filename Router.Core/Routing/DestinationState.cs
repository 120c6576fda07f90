using System.Net;
using Router.Core.Configuration;
using Router.Core.Health;
using Router.Core.Resilience;

namespace Router.Core.Routing;

/// <summary>
/// Runtime state of one upstream destination. Carried over across config swaps while the destination
/// stays in its cluster, so pools, health and breaker state survive a reload.
/// </summary>
internal sealed class DestinationState
{
    public DestinationState(string clusterId, string address, EndPoint endPoint)
    {
        ClusterId = clusterId;
        Address = address;
        EndPoint = endPoint;
    }

    public string ClusterId { get; }

    public string Address { get; }

    public EndPoint EndPoint { get; }

    /// <summary>Requests in flight to this destination (Interlocked).</summary>
    public int InFlight;

    /// <summary>Active health (null when the cluster has no health check).</summary>
    public HealthState? Health { get; private set; }

    /// <summary>Passive health / outlier ejection (null when not configured).</summary>
    public OutlierDetector? Outlier { get; private set; }

    /// <summary>Circuit breaker (null when not configured).</summary>
    public CircuitBreaker? Breaker { get; private set; }

    /// <summary>
    /// Whether the load balancer may pick this destination: healthy, not ejected, breaker letting traffic through.
    /// A few volatile reads, no lock.
    /// </summary>
    public bool IsAvailable => !_disabled && DestinationAvailability.IsAvailable(Health, Outlier, Breaker, MonotonicClock.NowMs);

    private volatile bool _disabled;

    /// <summary>Taken out of rotation by an operator (or a test): no traffic whatever its health.</summary>
    public bool Disabled
    {
        get => _disabled;
        set => _disabled = value;
    }

    private HealthCheckConfig? _healthConfig;
    private PassiveHealthConfig? _outlierConfig;
    private CircuitBreakerConfig? _breakerConfig;

    /// <summary>
    /// Makes the gates match the cluster's config. Gates whose settings did not change keep their state across a
    /// reload; changed ones start fresh. Runs at compile time, never on the request path.
    /// </summary>
    public void ConfigureGates(ClusterConfig cluster)
    {
        if (cluster.HealthCheck != _healthConfig || (Health is null) != (cluster.HealthCheck is null))
        {
            _healthConfig = cluster.HealthCheck;
            Health = cluster.HealthCheck is { } health ? new HealthState(health.UnhealthyThreshold, health.HealthyThreshold) : null;
        }

        if (cluster.PassiveHealth != _outlierConfig || (Outlier is null) != (cluster.PassiveHealth is null))
        {
            _outlierConfig = cluster.PassiveHealth;
            Outlier = cluster.PassiveHealth is { } passive
                ? new OutlierDetector(passive.ConsecutiveFailures, passive.EjectionMs, Math.Max(passive.EjectionMs, 300_000))
                : null;
        }

        if (cluster.CircuitBreaker != _breakerConfig || (Breaker is null) != (cluster.CircuitBreaker is null))
        {
            _breakerConfig = cluster.CircuitBreaker;
            Breaker = cluster.CircuitBreaker is { } breaker
                ? new CircuitBreaker(breaker.ConsecutiveFailures, breaker.BreakMs, breaker.FailureRatio ?? 0, breaker.MinimumRequests, breaker.WindowMs, breaker.HalfOpenTrials)
                : null;
        }
    }

    /// <summary>The data plane's connection pool for this destination, attached lazily by Router.Net.</summary>
    public object? Pool;
}
