namespace Router.Core.Health;

/// <summary>
/// Active health of one destination, fed by probe results: <c>unhealthyThreshold</c> failed probes in a row mark it
/// unhealthy, <c>healthyThreshold</c> successful probes in a row mark it healthy again.
/// </summary>
/// <remarks>
/// A destination starts healthy: a fresh config must serve at once rather than wait thresholds x interval for
/// probes to vouch for every destination, and the first probe runs within moments of the watch starting, so a dead
/// destination is found quickly (passive detection and the breaker cover the gap). The request path reads only
/// <see cref="IsHealthy"/>, a volatile read; <see cref="OnProbe"/> runs once per probe interval and takes a lock.
/// </remarks>
internal sealed class HealthState
{
    private readonly Lock _gate = new();
    private readonly int _unhealthyThreshold;
    private readonly int _healthyThreshold;
    private volatile bool _healthy = true;
    private int _consecutiveFailures;
    private int _consecutiveSuccesses;
    private long _probes;
    private long _failedProbes;
    private long _transitions;

    /// <param name="unhealthyThreshold">Failed probes in a row that mark the destination unhealthy (&gt;= 1).</param>
    /// <param name="healthyThreshold">Successful probes in a row that mark it healthy again (&gt;= 1).</param>
    public HealthState(int unhealthyThreshold = 3, int healthyThreshold = 2)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(unhealthyThreshold, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(healthyThreshold, 1);
        _unhealthyThreshold = unhealthyThreshold;
        _healthyThreshold = healthyThreshold;
    }

    /// <summary>
    /// Raised after every transition, on the thread that reported the probe, with the new health. Handlers must be
    /// quick and must not throw.
    /// </summary>
    public event Action<HealthState, bool>? Changed;

    /// <summary>Whether load balancing may pick the destination.</summary>
    public bool IsHealthy => _healthy;

    /// <summary>Failed probes in a row.</summary>
    public int ConsecutiveFailures => Volatile.Read(ref _consecutiveFailures);

    /// <summary>Successful probes in a row.</summary>
    public int ConsecutiveSuccesses => Volatile.Read(ref _consecutiveSuccesses);

    /// <summary>Probes reported since creation.</summary>
    public long ProbeCount => Interlocked.Read(ref _probes);

    /// <summary>Failed probes reported since creation.</summary>
    public long FailedProbeCount => Interlocked.Read(ref _failedProbes);

    /// <summary>Health transitions since creation.</summary>
    public long TransitionCount => Interlocked.Read(ref _transitions);

    /// <summary>Reports one probe's outcome.</summary>
    public void OnProbe(bool ok)
    {
        bool changed;
        lock (_gate)
        {
            Interlocked.Increment(ref _probes);
            if (ok)
            {
                Volatile.Write(ref _consecutiveFailures, 0);
                int successes = _consecutiveSuccesses + 1;
                Volatile.Write(ref _consecutiveSuccesses, successes);
                changed = !_healthy && successes >= _healthyThreshold;
            }
            else
            {
                Interlocked.Increment(ref _failedProbes);
                Volatile.Write(ref _consecutiveSuccesses, 0);
                int failures = _consecutiveFailures + 1;
                Volatile.Write(ref _consecutiveFailures, failures);
                changed = _healthy && failures >= _unhealthyThreshold;
            }

            if (changed)
            {
                _healthy = ok;
                Interlocked.Increment(ref _transitions);
            }
        }

        if (changed)
        {
            Changed?.Invoke(this, ok);
        }
    }
}
