using NUnit.Framework;
using Router.Core.Resilience;

namespace Router.Tests.Core.Resilience;

public sealed class ConcurrencyLimitTests
{
    [Test]
    public void TryEnter_UpToTheLimit_ThenRefuses()
    {
        var limit = new ConcurrencyLimit(2);

        Assert.Multiple(() =>
        {
            Assert.That(limit.TryEnter(), Is.True);
            Assert.That(limit.TryEnter(), Is.True);
            Assert.That(limit.TryEnter(), Is.False);
            Assert.That(limit.Current, Is.EqualTo(2));
            Assert.That(limit.Rejected, Is.EqualTo(1));
        });

        limit.Exit();
        Assert.That(limit.TryEnter(), Is.True, "a slot frees on exit");
    }

    [TestCase(null)]
    [TestCase(0)]
    [TestCase(-5)]
    public void NullOrNonPositiveLimit_IsUnlimited(int? value)
    {
        var limit = new ConcurrencyLimit(value);

        for (int i = 0; i < 10_000; i++)
        {
            Assert.That(limit.TryEnter(), Is.True);
        }

        limit.Exit();
        Assert.Multiple(() =>
        {
            Assert.That(limit.IsUnlimited, Is.True);
            Assert.That(limit.Current, Is.Zero, "an unlimited gate counts nothing");
        });
    }

    [Test]
    public void UnderConcurrency_NeverAdmitsMoreThanTheLimit_AndDrainsToZero()
    {
        const int Max = 8;
        var limit = new ConcurrencyLimit(Max);
        int inside = 0;
        int peak = 0;
        int admitted = 0;
        int refused = 0;

        Parallel.For(0, 200_000, new ParallelOptions { MaxDegreeOfParallelism = 16 }, _ =>
        {
            if (!limit.TryEnter())
            {
                Interlocked.Increment(ref refused);
                return;
            }

            int now = Interlocked.Increment(ref inside);
            int seen;
            while (now > (seen = Volatile.Read(ref peak)) && Interlocked.CompareExchange(ref peak, now, seen) != seen)
            {
            }

            Interlocked.Increment(ref admitted);
            Interlocked.Decrement(ref inside);
            limit.Exit();
        });

        Assert.Multiple(() =>
        {
            Assert.That(peak, Is.InRange(1, Max));
            Assert.That(limit.Current, Is.Zero);
            Assert.That(admitted + refused, Is.EqualTo(200_000));
            Assert.That(limit.Rejected, Is.EqualTo(refused));
        });
    }
}
