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
            Assert.That(breaker.TryAcquire(0, out BreakerPermit permit), Is.True);
            Assert.That(permit.IsTrial, Is.False);
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
        Assert.That(breaker.TryAcquire(0, out BreakerPermit trial), Is.True);
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
            Assert.That(breaker.TryAcquire(now, out BreakerPermit first), Is.True);
            Assert.That(first.IsTrial, Is.True);
            Assert.That(breaker.State, Is.EqualTo(CircuitState.HalfOpen));
            Assert.That(breaker.TryAcquire(now, out BreakerPermit second), Is.True);
            Assert.That(second.IsTrial, Is.True);
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
            if (breaker.TryAcquire(BreakMs, out BreakerPermit permit))
            {
                Interlocked.Increment(ref permit.IsTrial ? ref granted : ref nonTrials);
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
            Assert.That(breaker.TryAcquire(2 * BreakMs, out BreakerPermit permit), Is.True);
            Assert.That(permit.IsTrial, Is.True);
            Assert.That(breaker.TryAcquire(2 * BreakMs, out _), Is.False);
        });
    }

    [Test]
    public void HalfOpen_TrialSuccess_Closes()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 2, breakMs: BreakMs);
        Fail(breaker, 0, 2);
        Assert.That(breaker.TryAcquire(BreakMs, out BreakerPermit permit), Is.True);

        breaker.OnSuccess(permit);

        Assert.Multiple(() =>
        {
            Assert.That(breaker.State, Is.EqualTo(CircuitState.Closed));
            Assert.That(breaker.ConsecutiveFailures, Is.Zero);
            Assert.That(breaker.TryAcquire(BreakMs, out BreakerPermit next), Is.True);
            Assert.That(next.IsTrial, Is.False);
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
        Assert.That(breaker.TryAcquire(now, out BreakerPermit permit), Is.True);

        breaker.OnFailure(now, permit);

        Assert.Multiple(() =>
        {
            Assert.That(breaker.State, Is.EqualTo(CircuitState.Open));
            Assert.That(breaker.OpenUntilMs, Is.EqualTo(now + BreakMs));
            Assert.That(breaker.TryAcquire(now + BreakMs - 1, out _), Is.False);
            Assert.That(breaker.TryAcquire(now + BreakMs, out BreakerPermit nextTrial), Is.True);
            Assert.That(nextTrial.IsTrial, Is.True);
            Assert.That(breaker.TimesOpened, Is.EqualTo(2));
        });
    }

    [Test]
    public void HalfOpen_LateFailureOfAnEarlierRoundsTrial_DoesNotReopenTheNextRound()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 1, breakMs: BreakMs, halfOpenTrials: 2);
        Fail(breaker, 0, 1);
        Assert.That(breaker.TryAcquire(BreakMs, out BreakerPermit first), Is.True);
        Assert.That(breaker.TryAcquire(BreakMs, out BreakerPermit slow), Is.True);
        breaker.OnFailure(BreakMs + 100, first); // reopens until 2100
        Assert.That(breaker.TryAcquire((2 * BreakMs) + 100, out BreakerPermit next), Is.True);

        // The slow trial was sent in the first round; its failure says nothing about the round now in progress.
        breaker.OnFailure((2 * BreakMs) + 200, slow);

        Assert.Multiple(() =>
        {
            Assert.That(breaker.State, Is.EqualTo(CircuitState.HalfOpen));
            Assert.That(breaker.TimesOpened, Is.EqualTo(2));
            Assert.That(breaker.TryAcquire((2 * BreakMs) + 200, out BreakerPermit second), Is.True, "the round's second trial slot is still free");
            Assert.That(breaker.TryAcquire((2 * BreakMs) + 200, out _), Is.False, "a third concurrent trial");
        });
        breaker.OnSuccess(next);
        Assert.That(breaker.State, Is.EqualTo(CircuitState.Closed), "the round's own trial decides");
    }

    [Test]
    public void HalfOpen_LateSuccessOfAnEarlierRoundsTrial_DoesNotCloseTheNextRound()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 1, breakMs: BreakMs, halfOpenTrials: 2);
        Fail(breaker, 0, 1);
        Assert.That(breaker.TryAcquire(BreakMs, out BreakerPermit first), Is.True);
        Assert.That(breaker.TryAcquire(BreakMs, out BreakerPermit slow), Is.True);
        breaker.OnFailure(BreakMs + 100, first);
        Assert.That(breaker.TryAcquire((2 * BreakMs) + 100, out BreakerPermit next), Is.True);
        Assert.That(breaker.TryAcquire((2 * BreakMs) + 100, out BreakerPermit other), Is.True);

        breaker.OnSuccess(slow);

        Assert.Multiple(() =>
        {
            Assert.That(breaker.State, Is.EqualTo(CircuitState.HalfOpen));
            Assert.That(breaker.TryAcquire((2 * BreakMs) + 200, out _), Is.False, "both of the round's trials are still in flight");
        });
        breaker.OnFailure((2 * BreakMs) + 300, next);
        Assert.That(breaker.OpenUntilMs, Is.EqualTo((3 * BreakMs) + 300), "the round's own trial decides");
    }

    [Test]
    public void HalfOpen_TrialPresumedLost_ItsLateAnswerDoesNotDecideTheNewRound()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 1, breakMs: BreakMs);
        Fail(breaker, 0, 1);
        Assert.That(breaker.TryAcquire(BreakMs, out BreakerPermit lost), Is.True); // answered only after a whole break
        Assert.That(breaker.TryAcquire(2 * BreakMs, out BreakerPermit reissued), Is.True);

        breaker.OnSuccess(lost);

        Assert.Multiple(() =>
        {
            Assert.That(breaker.State, Is.EqualTo(CircuitState.HalfOpen));
            Assert.That(breaker.TryAcquire(2 * BreakMs, out _), Is.False, "the reissued trial still holds the only slot");
        });
        breaker.OnFailure((2 * BreakMs) + 10, reissued);
        Assert.That(breaker.State, Is.EqualTo(CircuitState.Open));
    }

    [Test]
    public void RatioBreaker_ClosingAfterTrial_ForgetsTheOldWindow()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 0, breakMs: BreakMs, failureRatio: 0.6, minimumRequests: 2, windowMs: 10_000);
        Fail(breaker, 0, 2);
        Assert.That(breaker.State, Is.EqualTo(CircuitState.Open));
        Assert.That(breaker.TryAcquire(BreakMs, out BreakerPermit permit), Is.True);
        breaker.OnSuccess(permit);

        Succeed(breaker, BreakMs, 1);
        Fail(breaker, BreakMs, 1); // 1 of 2 since closing; with the old window it would be 3 of 4

        Assert.That(breaker.State, Is.EqualTo(CircuitState.Closed));
    }

    [Test]
    public void FailuresOfRequestsStartedBeforeOpening_AreIgnored()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 1, breakMs: BreakMs);
        Assert.That(breaker.TryAcquire(0, out BreakerPermit early), Is.True);
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
            Assert.That(breaker.TryAcquire(nowMs, out BreakerPermit permit), Is.True);
            breaker.OnFailure(nowMs, permit);
        }
    }

    private static void Succeed(CircuitBreaker breaker, long nowMs, int count)
    {
        for (int i = 0; i < count; i++)
        {
            Assert.That(breaker.TryAcquire(nowMs, out BreakerPermit permit), Is.True);
            breaker.OnSuccess(permit);
        }
    }
}
