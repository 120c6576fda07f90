namespace Router.Core.Health;

/// <summary>
/// The cluster-wide cap on passive ejections: never more than <c>maxEjectionPercent</c> of the cluster's
/// destinations out at once (but at least one may go, as in Envoy, when the percentage is above zero), so a
/// cluster-wide fault degrades to slow answers instead of ejecting every destination.
/// </summary>
/// <remarks>
/// It counts ejected members when asked instead of keeping a counter, so ejections that simply expire need no
/// bookkeeping and carried-over detectors are counted correctly in a budget built for a new config. The count and
/// the ejection happen under a lock, but only on the rare path where a destination has reached its failure
/// threshold; nothing on the request path touches it. Build one per compiled cluster from its destinations' detectors.
/// </remarks>
internal sealed class EjectionBudget
{
    private readonly Lock _gate = new();
    private readonly OutlierDetector[] _members;
    private long _refused;

    /// <param name="members">The detectors of every destination in the cluster.</param>
    /// <param name="maxEjectionPercent">Maximum share of the cluster ejected at once (0..100); 0 disables ejection.</param>
    public EjectionBudget(IReadOnlyList<OutlierDetector> members, int maxEjectionPercent)
    {
        ArgumentNullException.ThrowIfNull(members);
        ArgumentOutOfRangeException.ThrowIfNegative(maxEjectionPercent);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxEjectionPercent, 100);
        _members = [.. members];
        MaxEjected = maxEjectionPercent == 0 || _members.Length == 0
            ? 0
            : Math.Max(1, _members.Length * maxEjectionPercent / 100);
    }

    /// <summary>Destinations in the cluster.</summary>
    public int DestinationCount => _members.Length;

    /// <summary>How many destinations may be ejected at once.</summary>
    public int MaxEjected { get; }

    /// <summary>Ejections refused because the budget was spent (for metrics).</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Members ejected at <paramref name="nowMs"/>.</summary>
    public int CountEjected(long nowMs)
    {
        int ejected = 0;
        foreach (OutlierDetector member in _members)
        {
            if (member.IsEjected(nowMs))
            {
                ejected++;
            }
        }

        return ejected;
    }

    internal bool TryEject(OutlierDetector detector, long nowMs)
    {
        lock (_gate)
        {
            if (CountEjected(nowMs) >= MaxEjected)
            {
                Interlocked.Increment(ref _refused);
                return false;
            }

            return detector.TryEject(nowMs);
        }
    }
}
