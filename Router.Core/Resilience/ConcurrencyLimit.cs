using System.Runtime.CompilerServices;

namespace Router.Core.Resilience;

/// <summary>
/// A concurrency gate (global, per route, per cluster, or connections per destination). <see cref="TryEnter"/> admits
/// while fewer than <see cref="Limit"/> holders are inside; every successful enter must be paired with one
/// <see cref="Exit"/> on the same instance (keep the instance you entered across a config reload).
/// </summary>
/// <remarks>
/// Increment, check, and step back on overflow: the number admitted never exceeds the limit, though
/// <see cref="Current"/> can overshoot it for an instant while rejected callers step back. An unlimited gate
/// (limit null or &lt;= 0) does no interlocked work at all and its <see cref="Current"/> stays 0.
/// </remarks>
internal sealed class ConcurrencyLimit
{
    private readonly int _limit;
    private int _current;
    private long _rejected;

    /// <param name="limit">Maximum holders; null or &lt;= 0 means unlimited.</param>
    public ConcurrencyLimit(int? limit) => _limit = limit is > 0 ? limit.Value : 0;

    /// <summary>True when the gate admits everything.</summary>
    public bool IsUnlimited => _limit == 0;

    /// <summary>The limit, or 0 when unlimited.</summary>
    public int Limit => _limit;

    /// <summary>Holders inside now (always 0 when unlimited).</summary>
    public int Current => Volatile.Read(ref _current);

    /// <summary>Entries refused since creation (for metrics).</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>
    /// The gate for a reloaded config: <paramref name="previous"/> itself when its limit is the same, so the requests
    /// in flight through it keep counting (a fresh gate would admit a full limit on top of them); otherwise a new one.
    /// </summary>
    public static ConcurrencyLimit CarryOver(ConcurrencyLimit? previous, int? limit)
        => previous is not null && previous._limit == (limit is > 0 ? limit.Value : 0) ? previous : new ConcurrencyLimit(limit);

    /// <summary>Enters the gate; false when it is full (answer 503 with Retry-After).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryEnter()
    {
        if (_limit == 0)
        {
            return true;
        }

        // The plain read first keeps a saturated gate from bouncing its cache line between cores on every refusal.
        if (Volatile.Read(ref _current) >= _limit)
        {
            return Refuse();
        }

        if (Interlocked.Increment(ref _current) <= _limit)
        {
            return true;
        }

        Interlocked.Decrement(ref _current);
        return Refuse();
    }

    /// <summary>Leaves the gate after a successful <see cref="TryEnter"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Exit()
    {
        if (_limit != 0)
        {
            Interlocked.Decrement(ref _current);
        }
    }

    private bool Refuse()
    {
        Interlocked.Increment(ref _rejected);
        return false;
    }
}
