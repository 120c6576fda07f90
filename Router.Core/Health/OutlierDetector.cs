using System.Runtime.CompilerServices;

namespace Router.Core.Health;

/// <summary>
/// Passive health for one destination: <c>consecutiveFailures</c> failed requests in a row (connect failure, reset,
/// 5xx: the caller decides what counts) eject it from load balancing for
/// <c>baseEjectionMs * 2^(timesEjected - 1)</c>, capped at <c>maxEjectionMs</c>. A success resets the count.
/// </summary>
/// <remarks>
/// Defaults follow Envoy's outlier detection (5 consecutive 5xx, 30 s base ejection, 300 s max). The backoff forgets
/// earlier ejections once a destination has stayed in for a full <c>maxEjectionMs</c>. When the detector is ejected
/// its count restarts, so a returning destination needs a fresh run of failures to go out again. Lock-free; the
/// healthy path is one volatile read in <see cref="IsEjected"/> and one in <see cref="OnSuccess"/>.
/// </remarks>
internal sealed class OutlierDetector
{
    private readonly int _threshold;
    private readonly int _baseEjectionMs;
    private readonly int _maxEjectionMs;
    private int _consecutiveFailures;
    private long _ejectedUntilMs;
    private int _timesEjected;
    private long _totalEjections;

    /// <param name="consecutiveFailures">Failures in a row that eject the destination (&gt;= 1).</param>
    /// <param name="baseEjectionMs">Length of the first ejection.</param>
    /// <param name="maxEjectionMs">Cap on an ejection's length as it doubles.</param>
    public OutlierDetector(int consecutiveFailures = 5, int baseEjectionMs = 30_000, int maxEjectionMs = 300_000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(consecutiveFailures, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(baseEjectionMs, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEjectionMs, baseEjectionMs);
        _threshold = consecutiveFailures;
        _baseEjectionMs = baseEjectionMs;
        _maxEjectionMs = maxEjectionMs;
    }

    /// <summary>Failures in a row since the last success or ejection.</summary>
    public int ConsecutiveFailures => Volatile.Read(ref _consecutiveFailures);

    /// <summary>The backoff exponent: ejections in the current run (resets after a long quiet period).</summary>
    public int TimesEjected => Volatile.Read(ref _timesEjected);

    /// <summary>Ejections since creation (for metrics).</summary>
    public long TotalEjections => Interlocked.Read(ref _totalEjections);

    /// <summary>Monotonic time (ms) the current or last ejection ends; 0 if never ejected.</summary>
    public long EjectedUntilMs => Volatile.Read(ref _ejectedUntilMs);

    /// <summary>True while the destination is ejected.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsEjected(long nowMs) => nowMs < Volatile.Read(ref _ejectedUntilMs);

    /// <summary>Reports a successful request: the failure run is broken.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void OnSuccess()
    {
        // Read before writing so the healthy path does not dirty a shared cache line.
        if (Volatile.Read(ref _consecutiveFailures) != 0)
        {
            Volatile.Write(ref _consecutiveFailures, 0);
        }
    }

    /// <summary>
    /// Reports a failed request. Returns true when this failure ejected the destination. With a
    /// <paramref name="budget"/>, the ejection happens only if the cluster's budget allows it; otherwise the run
    /// stays at the threshold and the next failure asks again. Failures while ejected are ignored.
    /// </summary>
    public bool OnFailure(long nowMs, EjectionBudget? budget = null)
    {
        if (IsEjected(nowMs))
        {
            return false;
        }

        if (Interlocked.Increment(ref _consecutiveFailures) < _threshold)
        {
            return false;
        }

        return budget is null ? TryEject(nowMs) : budget.TryEject(this, nowMs);
    }

    /// <summary>The ejection length the next ejection would get at <paramref name="nowMs"/>.</summary>
    public long NextEjectionMs(long nowMs) => EjectionMs(NextTimesEjected(Volatile.Read(ref _ejectedUntilMs), nowMs));

    internal bool TryEject(long nowMs)
    {
        long until = Volatile.Read(ref _ejectedUntilMs);
        if (nowMs < until)
        {
            return false;
        }

        int times = NextTimesEjected(until, nowMs);
        if (Interlocked.CompareExchange(ref _ejectedUntilMs, nowMs + EjectionMs(times), until) != until)
        {
            return false; // another failure ejected it first
        }

        Volatile.Write(ref _timesEjected, times);
        Volatile.Write(ref _consecutiveFailures, 0);
        Interlocked.Increment(ref _totalEjections);
        return true;
    }

    private int NextTimesEjected(long lastUntil, long nowMs)
    {
        int times = Volatile.Read(ref _timesEjected);
        if (lastUntil != 0 && nowMs - lastUntil >= _maxEjectionMs)
        {
            times = 0;
        }

        return Math.Min(times + 1, 31);
    }

    private long EjectionMs(int times) => Math.Min((long)_baseEjectionMs << (times - 1), _maxEjectionMs);
}
