namespace Router.Core.Resilience;

/// <summary>
/// Caps retries so a struggling cluster is not hit by a retry storm: a retry may start while the retries in flight
/// are fewer than <c>max(minConcurrentRetries, budgetPercent% of the requests in flight)</c>.
/// Defaults follow Envoy's retry budget (<c>budget_percent</c> 20%, <c>min_retry_concurrency</c> 3).
/// </summary>
/// <remarks>Every successful <see cref="TryAcquireRetry"/> must be paired with one <see cref="ReleaseRetry"/>.</remarks>
internal sealed class RetryBudget
{
    private readonly double _fraction;
    private readonly int _minConcurrentRetries;
    private int _inFlightRetries;
    private long _rejected;

    /// <param name="budgetPercent">Retries allowed as a percentage of the requests in flight (0..100).</param>
    /// <param name="minConcurrentRetries">Retries always allowed in flight, however few requests there are.</param>
    public RetryBudget(double budgetPercent = 20, int minConcurrentRetries = 3)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(budgetPercent);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(budgetPercent, 100);
        ArgumentOutOfRangeException.ThrowIfNegative(minConcurrentRetries);
        _fraction = budgetPercent / 100.0;
        _minConcurrentRetries = minConcurrentRetries;
    }

    /// <summary>Retries in flight now.</summary>
    public int InFlightRetries => Volatile.Read(ref _inFlightRetries);

    /// <summary>Retries refused since creation (for metrics).</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>The number of retries allowed in flight when <paramref name="inFlightRequests"/> requests are in flight.</summary>
    public int Allowed(int inFlightRequests) => Math.Max(_minConcurrentRetries, (int)(inFlightRequests * _fraction));

    /// <summary>Asks to start a retry; <paramref name="inFlightRequests"/> is the cluster's (or router's) current in-flight count.</summary>
    public bool TryAcquireRetry(int inFlightRequests)
    {
        int allowed = Allowed(inFlightRequests);
        if (Volatile.Read(ref _inFlightRetries) < allowed)
        {
            if (Interlocked.Increment(ref _inFlightRetries) <= allowed)
            {
                return true;
            }

            Interlocked.Decrement(ref _inFlightRetries);
        }

        Interlocked.Increment(ref _rejected);
        return false;
    }

    /// <summary>Ends a retry started by a successful <see cref="TryAcquireRetry"/>.</summary>
    public void ReleaseRetry() => Interlocked.Decrement(ref _inFlightRetries);
}
