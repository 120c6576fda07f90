using System.Runtime.CompilerServices;

namespace Router.Core.Resilience;

/// <summary>State of a <see cref="CircuitBreaker"/>.</summary>
internal enum CircuitState
{
    /// <summary>Traffic flows; failures are counted.</summary>
    Closed = 0,

    /// <summary>Requests fail fast until the break time has passed.</summary>
    Open = 1,

    /// <summary>A limited number of trial requests probe whether the destination recovered.</summary>
    HalfOpen = 2,
}

/// <summary>
/// A per-destination circuit breaker. Closed -> Open after <c>consecutiveFailures</c> failures in a row, or when the
/// failure ratio over a rolling window reaches <c>failureRatio</c> with at least <c>minimumRequests</c> requests.
/// Open fails fast for <c>breakMs</c>, then HalfOpen lets at most <c>halfOpenTrials</c> concurrent trial requests
/// through: a trial success closes the breaker, a trial failure opens it again for another <c>breakMs</c>.
/// </summary>
/// <remarks>
/// Lock-free. The state and the time it may leave Open are packed into one <c>long</c> so they change together in one
/// compare-and-swap. In the Closed state <see cref="TryAcquire"/> is one volatile read (plus one CAS on the current
/// window bucket when the ratio trigger is enabled) and <see cref="OnSuccess"/> is one read. Every permit handed out
/// by <see cref="TryAcquire"/> must be answered by exactly one <see cref="OnSuccess"/> or <see cref="OnFailure"/>
/// passing the same <c>isTrial</c>. Time is a monotonic millisecond clock (<see cref="MonotonicClock.NowMs"/>),
/// passed in so tests can drive it; it must not be negative.
/// </remarks>
internal sealed class CircuitBreaker
{
    private const long StateMask = 3;
    private const long ClosedWord = (long)CircuitState.Closed;

    // The rolling window: BucketCount buckets of windowMs / BucketCount each. A bucket packs
    // [failures:20][requests:20][bucket index tag:24] into one long, so rolling it over to a new interval and
    // counting in it is a single CAS and nothing is lost to a reset racing an increment.
    private const int BucketCount = 10;
    private const int TagBits = 24;
    private const long TagMask = (1L << TagBits) - 1;
    private const int RequestShift = TagBits;
    private const int FailureShift = TagBits + 20;
    private const long CountMax = (1L << 20) - 1;

    private readonly int _consecutiveFailureThreshold;
    private readonly int _breakMs;
    private readonly double _failureRatio;
    private readonly int _minimumRequests;
    private readonly int _halfOpenTrials;
    private readonly long _bucketMs;
    private readonly long[]? _buckets;

    // (openUntilMs << 2) | Open, (trialRoundStartMs << 2) | HalfOpen, or 0 for Closed.
    private long _word;
    private int _consecutiveFailures;
    private int _trialsInFlight;
    private long _timesOpened;

    /// <param name="consecutiveFailures">Failures in a row that open the breaker; &lt;= 0 disables this trigger.</param>
    /// <param name="breakMs">How long the breaker stays open before trial requests are let through.</param>
    /// <param name="failureRatio">Failure ratio (0..1] over the window that opens the breaker; &lt;= 0 disables this trigger.</param>
    /// <param name="minimumRequests">Requests the window must hold before the ratio is trusted.</param>
    /// <param name="windowMs">Length of the rolling window, split into ten buckets.</param>
    /// <param name="halfOpenTrials">Concurrent trial requests allowed while half-open.</param>
    public CircuitBreaker(
        int consecutiveFailures,
        int breakMs,
        double failureRatio = 0,
        int minimumRequests = 20,
        int windowMs = 10_000,
        int halfOpenTrials = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(breakMs, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(halfOpenTrials, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(failureRatio, 1.0);
        _consecutiveFailureThreshold = consecutiveFailures;
        _breakMs = breakMs;
        _halfOpenTrials = halfOpenTrials;
        if (failureRatio > 0)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(windowMs, BucketCount);
            _failureRatio = failureRatio;
            _minimumRequests = Math.Max(1, minimumRequests);
            _bucketMs = windowMs / BucketCount;
            _buckets = new long[BucketCount];
        }
    }

    /// <summary>The current state. Open is reported until a request (or <see cref="AllowsTraffic"/>) notices the break elapsed.</summary>
    public CircuitState State => (CircuitState)(Volatile.Read(ref _word) & StateMask);

    /// <summary>When open: the monotonic time (ms) at which trial requests will be let through; otherwise 0.</summary>
    public long OpenUntilMs
    {
        get
        {
            long word = Volatile.Read(ref _word);
            return (word & StateMask) == (long)CircuitState.Open ? word >> 2 : 0;
        }
    }

    /// <summary>Failures in a row while closed.</summary>
    public int ConsecutiveFailures => Volatile.Read(ref _consecutiveFailures);

    /// <summary>How many times the breaker has opened (for metrics).</summary>
    public long TimesOpened => Interlocked.Read(ref _timesOpened);

    /// <summary>
    /// Asks to send a request. False means the breaker is open (or half-open with every trial slot taken): fail fast.
    /// True hands out a permit; <paramref name="isTrial"/> says whether it is a half-open trial.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryAcquire(long nowMs, out bool isTrial)
    {
        long word = Volatile.Read(ref _word);
        if (word == ClosedWord)
        {
            isTrial = false;
            if (_buckets is not null)
            {
                Record(nowMs, failure: false);
            }

            return true;
        }

        return TryAcquireSlow(word, nowMs, out isTrial);
    }

    /// <summary>Reports a successful request. A trial success closes the breaker.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void OnSuccess(bool isTrial)
    {
        if (isTrial)
        {
            ReleaseTrial();
            Close();
            return;
        }

        // Read before writing so the healthy path does not dirty a shared cache line.
        if (Volatile.Read(ref _consecutiveFailures) != 0)
        {
            Volatile.Write(ref _consecutiveFailures, 0);
        }
    }

    /// <summary>
    /// Reports a failed request. While closed it counts toward the thresholds; a trial failure reopens the breaker.
    /// Failures of requests that started before the breaker opened are ignored.
    /// </summary>
    public void OnFailure(long nowMs, bool isTrial)
    {
        long word = Volatile.Read(ref _word);
        if (isTrial)
        {
            ReleaseTrial();
            if ((word & StateMask) == (long)CircuitState.HalfOpen)
            {
                TryOpen(word, nowMs);
                return;
            }

            // Another trial already closed (or reopened) the breaker: count it like any other request's outcome.
        }

        if (word != ClosedWord)
        {
            return;
        }

        int failures = Interlocked.Increment(ref _consecutiveFailures);
        bool open = _consecutiveFailureThreshold > 0 && failures >= _consecutiveFailureThreshold;
        if (_buckets is not null)
        {
            Record(nowMs, failure: true);
            open = open || RatioReached(nowMs);
        }

        if (open)
        {
            TryOpen(word, nowMs);
        }
    }

    /// <summary>
    /// Cheap check for the load balancer's availability filter: true when closed, when the break has elapsed, or
    /// when half-open with a trial slot free. It hands out nothing; <see cref="TryAcquire"/> still decides.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool AllowsTraffic(long nowMs)
    {
        long word = Volatile.Read(ref _word);
        return word == ClosedWord || AllowsTrafficSlow(word, nowMs);
    }

    /// <summary>Requests started and failures reported in the rolling window ending at <paramref name="nowMs"/> (0, 0 without a ratio trigger).</summary>
    public (long Requests, long Failures) WindowCounts(long nowMs)
    {
        if (_buckets is null)
        {
            return (0, 0);
        }

        long index = nowMs / _bucketMs;
        long requests = 0;
        long failures = 0;
        for (int i = 0; i < BucketCount; i++)
        {
            long value = Volatile.Read(ref _buckets![i]);
            long age = (index - (value & TagMask)) & TagMask;
            if (age < BucketCount)
            {
                requests += (value >>> RequestShift) & CountMax;
                failures += (value >>> FailureShift) & CountMax;
            }
        }

        return (requests, failures);
    }

    private bool AllowsTrafficSlow(long word, long nowMs) => (CircuitState)(word & StateMask) switch
    {
        CircuitState.Open => nowMs >= word >> 2,
        CircuitState.HalfOpen => Volatile.Read(ref _trialsInFlight) < _halfOpenTrials || TrialsPresumedLost(word, nowMs),
        _ => true,
    };

    private bool TryAcquireSlow(long word, long nowMs, out bool isTrial)
    {
        isTrial = false;
        while (true)
        {
            var state = (CircuitState)(word & StateMask);
            if (state == CircuitState.Closed)
            {
                if (_buckets is not null)
                {
                    Record(nowMs, failure: false);
                }

                return true;
            }

            if (state == CircuitState.Open)
            {
                if (nowMs < word >> 2)
                {
                    return false;
                }

                // While half-open the word holds when the round of trials began.
                long halfOpen = (nowMs << 2) | (long)CircuitState.HalfOpen;
                long seen = Interlocked.CompareExchange(ref _word, halfOpen, word);
                if (seen != word)
                {
                    word = seen;
                    continue;
                }
            }

            int trials = Volatile.Read(ref _trialsInFlight);
            while (trials < _halfOpenTrials)
            {
                int seen = Interlocked.CompareExchange(ref _trialsInFlight, trials + 1, trials);
                if (seen == trials)
                {
                    isTrial = true;
                    return true;
                }

                trials = seen;
            }

            if (!TrialsPresumedLost(word, nowMs))
            {
                return false;
            }

            // Every slot has been held for a whole break: start a new round of trials.
            long renewed = (nowMs << 2) | (long)CircuitState.HalfOpen;
            if (Interlocked.CompareExchange(ref _word, renewed, word) == word)
            {
                Volatile.Write(ref _trialsInFlight, 0);
            }

            word = Volatile.Read(ref _word);
        }
    }

    // The half-open round began at (word >> 2). A trial unanswered for a whole break is presumed lost (a caller
    // that never reported it), so a dropped permit cannot keep the destination out of rotation forever.
    private bool TrialsPresumedLost(long word, long nowMs) => nowMs - (word >> 2) >= _breakMs;

    private void TryOpen(long expectedWord, long nowMs)
    {
        // Trials of an earlier half-open round may still be in flight; their releases are clamped at zero, so
        // starting every round from zero keeps a lost permit from wedging the breaker half-open forever.
        Volatile.Write(ref _trialsInFlight, 0);
        long open = ((nowMs + _breakMs) << 2) | (long)CircuitState.Open;
        if (Interlocked.CompareExchange(ref _word, open, expectedWord) == expectedWord)
        {
            Interlocked.Increment(ref _timesOpened);
        }
    }

    private void Close()
    {
        long word = Volatile.Read(ref _word);
        if ((word & StateMask) != (long)CircuitState.HalfOpen)
        {
            return;
        }

        // Forget the failures that opened the breaker before publishing Closed (nothing records while half-open),
        // so the old window cannot trip it again at once.
        Volatile.Write(ref _consecutiveFailures, 0);
        if (_buckets is not null)
        {
            for (int i = 0; i < _buckets.Length; i++)
            {
                Volatile.Write(ref _buckets[i], 0);
            }
        }

        Interlocked.CompareExchange(ref _word, ClosedWord, word);
    }

    private void ReleaseTrial()
    {
        int trials = Volatile.Read(ref _trialsInFlight);
        while (trials > 0)
        {
            int seen = Interlocked.CompareExchange(ref _trialsInFlight, trials - 1, trials);
            if (seen == trials)
            {
                return;
            }

            trials = seen;
        }
    }

    private void Record(long nowMs, bool failure)
    {
        long index = nowMs / _bucketMs;
        long tag = index & TagMask;
        ref long slot = ref _buckets![(int)(index % BucketCount)];
        while (true)
        {
            long old = Volatile.Read(ref slot);
            long requests = 0;
            long failures = 0;
            if ((old & TagMask) == tag)
            {
                requests = (old >>> RequestShift) & CountMax;
                failures = (old >>> FailureShift) & CountMax;
            }

            // Saturate rather than overflow into the neighbouring field.
            if (failure)
            {
                failures = Math.Min(failures + 1, CountMax);
            }
            else
            {
                requests = Math.Min(requests + 1, CountMax);
            }

            long next = tag | (requests << RequestShift) | (failures << FailureShift);
            if (next == old || Interlocked.CompareExchange(ref slot, next, old) == old)
            {
                return;
            }
        }
    }

    private bool RatioReached(long nowMs)
    {
        (long requests, long failures) = WindowCounts(nowMs);

        // Requests are counted when they start and failures when they end, so a failure can land in a later
        // bucket than its request; the ratio is a rate estimate, not an exact fraction.
        return requests >= _minimumRequests && failures >= _failureRatio * requests;
    }
}
