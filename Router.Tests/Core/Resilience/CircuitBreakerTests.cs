using NUnit.Framework;
using Router.Core.Resilience;

namespace Router.Tests.Core.Resilience;

public sealed class CircuitBreakerTests
{
    private const int BreakMs = 1000;

    [Test]
    public void NewBreaker_IsClosedAndAdmits()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 3, breakMs: BreakMs);

        Assert.Multiple(() =>
        {
            Assert.That(breaker.State, Is.EqualTo(CircuitState.Closed));
            Assert.That(breaker.TryAcquire(0, out bool isTrial), Is.True);
            Assert.That(isTrial, Is.False);
            Assert.That(breaker.AllowsTraffic(0), Is.True);
        });
    }

    [Test]
    public void ConsecutiveFailures_AtThreshold_OpenAndFailFast()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 3, breakMs: BreakMs);

        Fail(breaker, 100, 2);
        Assert.That(breaker.State, Is.EqualTo(CircuitState.Closed));
        Fail(breaker, 100, 1);

        Assert.Multiple(() =>
        {
            Assert.That(breaker.State, Is.EqualTo(CircuitState.Open));
            Assert.That(breaker.TryAcquire(100 + BreakMs - 1, out _), Is.False);
            Assert.That(breaker.AllowsTraffic(100 + BreakMs - 1), Is.False);
            Assert.That(breaker.OpenUntilMs, Is.EqualTo(100 + BreakMs));
            Assert.That(breaker.TimesOpened, Is.EqualTo(1));
        });
    }

    [Test]
    public void Success_BetweenFailures_ResetsTheRun()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 3, breakMs: BreakMs);

        Fail(breaker, 0, 2);
        Assert.That(breaker.TryAcquire(0, out bool trial), Is.True);
        breaker.OnSuccess(trial);
        Fail(breaker, 0, 2);

        Assert.Multiple(() =>
        {
            Assert.That(breaker.State, Is.EqualTo(CircuitState.Closed));
            Assert.That(breaker.ConsecutiveFailures, Is.EqualTo(2));
        });
    }

    [Test]
    public void FailureRatio_BelowMinimumRequests_StaysClosed()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 0, breakMs: BreakMs, failureRatio: 0.5, minimumRequests: 10, windowMs: 10_000);

        // 100% failures, but only 9 requests in the window.
        Fail(breaker, 50, 9);

        Assert.That(breaker.State, Is.EqualTo(CircuitState.Closed));
    }

    [Test]
    public void FailureRatio_AtRatioWithMinimumRequests_Opens()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 0, breakMs: BreakMs, failureRatio: 0.5, minimumRequests: 10, windowMs: 10_000);

        // Alternate, so the failures never form a run: 4 of 8 fail across several buckets.
        long now = 0;
        for (int i = 0; i < 4; i++)
        {
            Succeed(breaker, now, 1);
            Fail(breaker, now, 1);
            now += 700;
        }

        Assert.That(breaker.State, Is.EqualTo(CircuitState.Closed), "50% but only 8 of the 10 requests needed");
        Succeed(breaker, now, 1);
        Assert.That(breaker.State, Is.EqualTo(CircuitState.Closed));
        Fail(breaker, now, 1); // 5 of 10

        Assert.That(breaker.State, Is.EqualTo(CircuitState.Open));
    }

    [Test]
    public void FailureRatio_OldFailuresLeaveTheWindow()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 0, breakMs: BreakMs, failureRatio: 0.5, minimumRequests: 4, windowMs: 1000);

        Fail(breaker, 0, 3); // 3 of 3, below the minimum
        Succeed(breaker, 2150, 3); // the failures are two windows old
        Fail(breaker, 2150, 1); // 1 of 4 in the window

        Assert.That(breaker.State, Is.EqualTo(CircuitState.Closed));
    }

    [Test]
    public void AfterBreak_HalfOpen_AdmitsOnlyTheTrialLimit()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 1, breakMs: BreakMs, halfOpenTrials: 2);
        Fail(breaker, 0, 1);

        long now = BreakMs;
        Assert.Multiple(() =>
        {
            Assert.That(breaker.AllowsTraffic(now), Is.True);
            Assert.That(breaker.TryAcquire(now, out bool first), Is.True);
            Assert.That(first, Is.True);
            Assert.That(breaker.State, Is.EqualTo(CircuitState.HalfOpen));
            Assert.That(breaker.TryAcquire(now, out bool second), Is.True);
            Assert.That(second, Is.True);
            Assert.That(breaker.TryAcquire(now, out _), Is.False, "third concurrent trial");
            Assert.That(breaker.AllowsTraffic(now), Is.False);
        });
    }

    [Test]
    public void HalfOpen_TrialLimit_HoldsUnderConcurrency()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 1, breakMs: BreakMs, halfOpenTrials: 3);
        Fail(breaker, 0, 1);
        int granted = 0;
        int nonTrials = 0;

        Parallel.For(0, 1000, _ =>
        {
            if (breaker.TryAcquire(BreakMs, out bool isTrial))
            {
                Interlocked.Increment(ref isTrial ? ref granted : ref nonTrials);
            }
        });

        Assert.Multiple(() =>
        {
            Assert.That(granted, Is.EqualTo(3));
            Assert.That(nonTrials, Is.Zero);
        });
    }

    [Test]
    public void HalfOpen_LateFirstRequest_StillAdmitsOnlyOneTrial()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 1, breakMs: BreakMs);
        Fail(breaker, 0, 1);

        Assert.Multiple(() =>
        {
            Assert.That(breaker.TryAcquire(5 * BreakMs, out _), Is.True);
            Assert.That(breaker.TryAcquire((5 * BreakMs) + 1, out _), Is.False);
        });
    }

    [Test]
    public void HalfOpen_TrialNeverReported_IsReissuedAfterABreak()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 1, breakMs: BreakMs);
        Fail(breaker, 0, 1);
        Assert.That(breaker.TryAcquire(BreakMs, out _), Is.True); // this permit is lost

        Assert.Multiple(() =>
        {
            Assert.That(breaker.TryAcquire((2 * BreakMs) - 1, out _), Is.False);
            Assert.That(breaker.AllowsTraffic(2 * BreakMs), Is.True);
            Assert.That(breaker.TryAcquire(2 * BreakMs, out bool isTrial), Is.True);
            Assert.That(isTrial, Is.True);
            Assert.That(breaker.TryAcquire(2 * BreakMs, out _), Is.False);
        });
    }

    [Test]
    public void HalfOpen_TrialSuccess_Closes()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 2, breakMs: BreakMs);
        Fail(breaker, 0, 2);
        Assert.That(breaker.TryAcquire(BreakMs, out bool isTrial), Is.True);

        breaker.OnSuccess(isTrial);

        Assert.Multiple(() =>
        {
            Assert.That(breaker.State, Is.EqualTo(CircuitState.Closed));
            Assert.That(breaker.ConsecutiveFailures, Is.Zero);
            Assert.That(breaker.TryAcquire(BreakMs, out bool next), Is.True);
            Assert.That(next, Is.False);
        });
        Fail(breaker, BreakMs, 1);
        Assert.That(breaker.State, Is.EqualTo(CircuitState.Closed), "the run starts again from zero");
    }

    [Test]
    public void HalfOpen_TrialFailure_ReopensForAnotherBreak()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 2, breakMs: BreakMs);
        Fail(breaker, 0, 2);
        long now = BreakMs + 10;
        Assert.That(breaker.TryAcquire(now, out bool isTrial), Is.True);

        breaker.OnFailure(now, isTrial);

        Assert.Multiple(() =>
        {
            Assert.That(breaker.State, Is.EqualTo(CircuitState.Open));
            Assert.That(breaker.OpenUntilMs, Is.EqualTo(now + BreakMs));
            Assert.That(breaker.TryAcquire(now + BreakMs - 1, out _), Is.False);
            Assert.That(breaker.TryAcquire(now + BreakMs, out bool nextTrial), Is.True);
            Assert.That(nextTrial, Is.True);
            Assert.That(breaker.TimesOpened, Is.EqualTo(2));
        });
    }

    [Test]
    public void RatioBreaker_ClosingAfterTrial_ForgetsTheOldWindow()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 0, breakMs: BreakMs, failureRatio: 0.6, minimumRequests: 2, windowMs: 10_000);
        Fail(breaker, 0, 2);
        Assert.That(breaker.State, Is.EqualTo(CircuitState.Open));
        Assert.That(breaker.TryAcquire(BreakMs, out bool isTrial), Is.True);
        breaker.OnSuccess(isTrial);

        Succeed(breaker, BreakMs, 1);
        Fail(breaker, BreakMs, 1); // 1 of 2 since closing; with the old window it would be 3 of 4

        Assert.That(breaker.State, Is.EqualTo(CircuitState.Closed));
    }

    [Test]
    public void FailuresOfRequestsStartedBeforeOpening_AreIgnored()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 1, breakMs: BreakMs);
        Assert.That(breaker.TryAcquire(0, out bool early), Is.True);
        Fail(breaker, 0, 1);

        breaker.OnFailure(500, early);

        Assert.That(breaker.OpenUntilMs, Is.EqualTo(BreakMs), "a late failure does not extend the break");
    }

    [Test]
    public void WindowCounts_ReportRequestsAndFailuresInTheWindow()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 0, breakMs: BreakMs, failureRatio: 0.9, minimumRequests: 100, windowMs: 1000);
        Succeed(breaker, 0, 3);
        Fail(breaker, 500, 2);

        Assert.Multiple(() =>
        {
            Assert.That(breaker.WindowCounts(900), Is.EqualTo((5L, 2L)));
            Assert.That(breaker.WindowCounts(1200), Is.EqualTo((2L, 2L)), "the first bucket has left the window");
        });
    }

    private static void Fail(CircuitBreaker breaker, long nowMs, int count)
    {
        for (int i = 0; i < count; i++)
        {
            Assert.That(breaker.TryAcquire(nowMs, out bool isTrial), Is.True);
            breaker.OnFailure(nowMs, isTrial);
        }
    }

    private static void Succeed(CircuitBreaker breaker, long nowMs, int count)
    {
        for (int i = 0; i < count; i++)
        {
            Assert.That(breaker.TryAcquire(nowMs, out bool isTrial), Is.True);
            breaker.OnSuccess(isTrial);
        }
    }
}
