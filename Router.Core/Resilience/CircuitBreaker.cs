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
/// What <see cref="CircuitBreaker.TryAcquire"/> handed out: a request sent while closed, or a trial of one half-open
/// round. A trial is told apart from the trials of other rounds, so a late answer cannot decide a round it was not
/// sent in.
/// </summary>
internal readonly struct BreakerPermit
{
    // The start time (ms) of the half-open round the trial belongs to; 0 for a request that is not a trial. A round
    // starts no earlier than a break after the breaker opened, so a round's start is never 0.
    private readonly long _round;

    internal BreakerPermit(long round) => _round = round;

    /// <summary>Whether this is a half-open trial.</summary>
    public bool IsTrial => _round != 0;

    internal long Round => _round;
}

/// <summary>
/// A per-destination circuit breaker. Closed -> Open after <c>consecutiveFailures</c> failures in a row, or when the
/// failure ratio over a rolling window reaches <c>failureRatio</c> with at least <c>minimumRequests</c> requests.
/// Open fails fast for <c>breakMs</c>, then HalfOpen lets at most <c>halfOpenTrials</c> concurrent trial requests
/// through: a trial success closes the breaker, a trial failure opens it again for another <c>breakMs</c>.
/// </summary>
/// <remarks>
/// Lock-free. The state, its time (when Open may end, or when the half-open round began) and the round's trials in
/// flight are packed into one <c>long</c> so they change together in one compare-and-swap. In the Closed state
/// <see cref="TryAcquire"/> is one volatile read (plus one CAS on the current window bucket when the ratio trigger is
/// enabled) and <see cref="OnSuccess"/> is one read. Every permit handed out by <see cref="TryAcquire"/> should be
/// answered by one <see cref="OnSuccess"/> or <see cref="OnFailure"/> passing the same permit; a trial answered after
/// its round ended (another trial decided it, or it was presumed lost) counts as an ordinary request's outcome. Time is
/// a monotonic millisecond clock (<see cref="MonotonicClock.NowMs"/>), passed in so tests can drive it; it must not be
/// negative. Rounds are told apart by their start times, which that clock makes distinct.
/// </remarks>
internal sealed class CircuitBreaker
{
    // The word: [time:42][trials in flight:20][state:2]. 42 bits of milliseconds is over a century of uptime.
    private const long StateMask = 3;
    private const int TrialShift = 2;
    private const long TrialMask = (1L << 20) - 1;
    private const int TimeShift = 22;
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

    /// <summary>The most trials the state word can count (config validation rejects more).</summary>
    internal const int MaxHalfOpenTrials = (int)TrialMask;

    /// <summary>The most requests the whole window counts: a larger minimum could never be reached, so validation rejects it.</summary>
    internal const int MaxMinimumRequests = (int)(BucketCount * CountMax);

    private readonly int _consecutiveFailureThreshold;
    private readonly int _breakMs;
    private readonly double _failureRatio;
    private readonly int _minimumRequests;
    private readonly int _halfOpenTrials;
    private readonly long _bucketMs;
    private readonly long[]? _buckets;

    // Open: openUntilMs and the state; HalfOpen: the round's start, its trials in flight and the state; Closed: 0.
    private long _word;
    private int _consecutiveFailures;
    private long _timesOpened;

    /// <param name="consecutiveFailures">Failures in a row that open the breaker; &lt;= 0 disables this trigger.</param>
    /// <param name="breakMs">How long the breaker stays open before trial requests are let through.</param>
    /// <param name="failureRatio">Failure ratio (0..1] over the window that opens the breaker; &lt;= 0 disables this trigger.</param>
    /// <param name="minimumRequests">Requests the window must hold before the ratio is trusted.</param>
    /// <param name="windowMs">Length of the rolling window, split into ten buckets.</param>
    /// <param name="halfOpenTrials">Concurrent trial requests allowed while half-open, at most <see cref="MaxHalfOpenTrials"/>.</param>
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
        ArgumentOutOfRangeException.ThrowIfGreaterThan(halfOpenTrials, MaxHalfOpenTrials);
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
            return (word & StateMask) == (long)CircuitState.Open ? word >> TimeShift : 0;
        }
    }

    /// <summary>Failures in a row while closed.</summary>
    public int ConsecutiveFailures => Volatile.Read(ref _consecutiveFailures);

    /// <summary>How many times the breaker has opened (for metrics).</summary>
    public long TimesOpened => Interlocked.Read(ref _timesOpened);

    /// <summary>
    /// Asks to send a request. False means the breaker is open (or half-open with every trial slot taken): fail fast.
    /// True hands out a <paramref name="permit"/>, to be passed to the outcome's report.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryAcquire(long nowMs, out BreakerPermit permit)
    {
        long word = Volatile.Read(ref _word);
        if (word == ClosedWord)
        {
            permit = default;
            if (_buckets is not null)
            {
                Record(nowMs, failure: false);
            }

            return true;
        }

        return TryAcquireSlow(word, nowMs, out permit);
    }

    /// <summary>Reports a successful request. A trial success closes the breaker, if the trial's round is still on.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void OnSuccess(BreakerPermit permit)
    {
        if (permit.IsTrial && Close(permit.Round))
        {
            return;
        }

        // Read before writing so the healthy path does not dirty a shared cache line.
        if (Volatile.Read(ref _consecutiveFailures) != 0)
        {
            Volatile.Write(ref _consecutiveFailures, 0);
        }
    }

    /// <summary>
    /// Reports a failed request. While closed it counts toward the thresholds; a trial failure reopens the breaker, if
    /// the trial's round is still on. Failures of requests that started before the breaker opened are ignored.
    /// </summary>
    public void OnFailure(long nowMs, BreakerPermit permit)
    {
        if (permit.IsTrial && EndRound(permit.Round, OpenWord(nowMs)))
        {
            Interlocked.Increment(ref _timesOpened);
            return;
        }

        // Not a trial, or its round already ended (another trial closed or reopened the breaker, or it was presumed
        // lost): count it like any other request's outcome.
        long word = Volatile.Read(ref _word);
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
        CircuitState.Open => nowMs >= word >> TimeShift,
        CircuitState.HalfOpen => TrialsInFlight(word) < _halfOpenTrials || TrialsPresumedLost(word, nowMs),
        _ => true,
    };

    private bool TryAcquireSlow(long word, long nowMs, out BreakerPermit permit)
    {
        permit = default;
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

            long roundStart;
            long next;
            if (state == CircuitState.Open)
            {
                if (nowMs < word >> TimeShift)
                {
                    return false;
                }

                roundStart = nowMs;
                next = HalfOpenWord(nowMs, trials: 1);
            }
            else if (TrialsInFlight(word) < _halfOpenTrials)
            {
                roundStart = word >> TimeShift;
                next = word + (1L << TrialShift);
            }
            else if (TrialsPresumedLost(word, nowMs))
            {
                // Every slot has been held for a whole break: start a new round of trials. The old round's trials
                // may still answer; they no longer decide anything.
                roundStart = nowMs;
                next = HalfOpenWord(nowMs, trials: 1);
            }
            else
            {
                return false;
            }

            long seen = Interlocked.CompareExchange(ref _word, next, word);
            if (seen == word)
            {
                permit = new BreakerPermit(roundStart);
                return true;
            }

            word = seen;
        }
    }

    private static long HalfOpenWord(long roundStartMs, long trials) =>
        (roundStartMs << TimeShift) | (trials << TrialShift) | (long)CircuitState.HalfOpen;

    private long OpenWord(long nowMs) => ((nowMs + _breakMs) << TimeShift) | (long)CircuitState.Open;

    private static long TrialsInFlight(long word) => (word >> TrialShift) & TrialMask;

    private static bool InRound(long word, long round) =>
        (word & StateMask) == (long)CircuitState.HalfOpen && word >> TimeShift == round;

    // The half-open round began at the word's time. A trial unanswered for a whole break is presumed lost (a caller
    // that never reported it), so a dropped permit cannot keep the destination out of rotation forever.
    private bool TrialsPresumedLost(long word, long nowMs) => nowMs - (word >> TimeShift) >= _breakMs;

    private void TryOpen(long expectedWord, long nowMs)
    {
        if (Interlocked.CompareExchange(ref _word, OpenWord(nowMs), expectedWord) == expectedWord)
        {
            Interlocked.Increment(ref _timesOpened);
        }
    }

    // Ends the given half-open round with the next word, unless the round already ended. Handing out another of the
    // round's trials also changes the word, so a lost swap is retried for as long as the round is the same.
    private bool EndRound(long round, long next)
    {
        long word = Volatile.Read(ref _word);
        while (InRound(word, round))
        {
            long seen = Interlocked.CompareExchange(ref _word, next, word);
            if (seen == word)
            {
                return true;
            }

            word = seen;
        }

        return false;
    }

    private bool Close(long round)
    {
        if (!InRound(Volatile.Read(ref _word), round))
        {
            return false;
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

        return EndRound(round, ClosedWord);
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
