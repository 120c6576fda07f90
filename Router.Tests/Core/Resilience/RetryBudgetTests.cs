using NUnit.Framework;
using Router.Core.Resilience;

namespace Router.Tests.Core.Resilience;

public sealed class RetryBudgetTests
{
    [Test]
    public void FewRequestsInFlight_AllowsTheMinimumConcurrentRetries()
    {
        var budget = new RetryBudget(budgetPercent: 20, minConcurrentRetries: 3);

        Assert.Multiple(() =>
        {
            Assert.That(budget.TryAcquireRetry(1), Is.True);
            Assert.That(budget.TryAcquireRetry(1), Is.True);
            Assert.That(budget.TryAcquireRetry(1), Is.True);
            Assert.That(budget.TryAcquireRetry(1), Is.False);
            Assert.That(budget.InFlightRetries, Is.EqualTo(3));
            Assert.That(budget.Rejected, Is.EqualTo(1));
        });
    }

    [Test]
    public void ManyRequestsInFlight_AllowsThePercentage()
    {
        var budget = new RetryBudget(budgetPercent: 20, minConcurrentRetries: 3);
        int granted = 0;

        while (budget.TryAcquireRetry(100))
        {
            granted++;
        }

        Assert.That(granted, Is.EqualTo(20));
    }

    [Test]
    public void ReleaseRetry_FreesBudget()
    {
        var budget = new RetryBudget(budgetPercent: 0, minConcurrentRetries: 1);
        Assert.That(budget.TryAcquireRetry(1000), Is.True);
        Assert.That(budget.TryAcquireRetry(1000), Is.False);

        budget.ReleaseRetry();

        Assert.Multiple(() =>
        {
            Assert.That(budget.InFlightRetries, Is.Zero);
            Assert.That(budget.TryAcquireRetry(1000), Is.True);
        });
    }

    [Test]
    public void UnderConcurrency_NeverExceedsTheBudget()
    {
        var budget = new RetryBudget(budgetPercent: 10, minConcurrentRetries: 2);
        int inside = 0;
        int peak = 0;

        Parallel.For(0, 100_000, _ =>
        {
            if (!budget.TryAcquireRetry(50))
            {
                return;
            }

            int now = Interlocked.Increment(ref inside);
            int seen;
            while (now > (seen = Volatile.Read(ref peak)) && Interlocked.CompareExchange(ref peak, now, seen) != seen)
            {
            }

            Interlocked.Decrement(ref inside);
            budget.ReleaseRetry();
        });

        Assert.Multiple(() =>
        {
            Assert.That(peak, Is.InRange(1, 5));
            Assert.That(budget.InFlightRetries, Is.Zero);
        });
    }
}
