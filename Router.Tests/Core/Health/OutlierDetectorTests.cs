using NUnit.Framework;
using Router.Core.Health;

namespace Router.Tests.Core.Health;

public sealed class OutlierDetectorTests
{
    private const int BaseMs = 1000;
    private const int MaxMs = 5000;

    [Test]
    public void ConsecutiveFailures_AtThreshold_Eject()
    {
        var detector = new OutlierDetector(consecutiveFailures: 3, baseEjectionMs: BaseMs, maxEjectionMs: MaxMs);

        Assert.Multiple(() =>
        {
            Assert.That(detector.OnFailure(100), Is.False);
            Assert.That(detector.OnFailure(100), Is.False);
            Assert.That(detector.OnFailure(100), Is.True);
            Assert.That(detector.IsEjected(100), Is.True);
            Assert.That(detector.IsEjected(100 + BaseMs - 1), Is.True);
            Assert.That(detector.IsEjected(100 + BaseMs), Is.False);
        });
    }

    [Test]
    public void Success_ResetsTheFailureRun()
    {
        var detector = new OutlierDetector(consecutiveFailures: 2, baseEjectionMs: BaseMs, maxEjectionMs: MaxMs);

        detector.OnFailure(0);
        detector.OnSuccess();
        detector.OnFailure(0);

        Assert.Multiple(() =>
        {
            Assert.That(detector.IsEjected(0), Is.False);
            Assert.That(detector.ConsecutiveFailures, Is.EqualTo(1));
        });
    }

    [Test]
    public void RepeatedEjections_DoubleInLength_UpToTheCap()
    {
        var detector = new OutlierDetector(consecutiveFailures: 1, baseEjectionMs: BaseMs, maxEjectionMs: MaxMs);
        var lengths = new List<long>();
        long now = 0;

        for (int i = 0; i < 5; i++)
        {
            Assert.That(detector.OnFailure(now), Is.True);
            lengths.Add(detector.EjectedUntilMs - now);
            now = detector.EjectedUntilMs; // fails again as soon as it returns
        }

        Assert.Multiple(() =>
        {
            Assert.That(lengths, Is.EqualTo(new long[] { 1000, 2000, 4000, 5000, 5000 }));
            Assert.That(detector.TimesEjected, Is.EqualTo(5));
            Assert.That(detector.TotalEjections, Is.EqualTo(5));
        });
    }

    [Test]
    public void Backoff_IsForgotten_AfterAQuietMaxEjectionPeriod()
    {
        var detector = new OutlierDetector(consecutiveFailures: 1, baseEjectionMs: BaseMs, maxEjectionMs: MaxMs);
        detector.OnFailure(0);
        detector.OnFailure(BaseMs); // second ejection: 2 s, until 3000

        long quiet = detector.EjectedUntilMs + MaxMs;
        detector.OnFailure(quiet);

        Assert.That(detector.EjectedUntilMs - quiet, Is.EqualTo(BaseMs));
    }

    [Test]
    public void FailuresWhileEjected_DoNotExtendTheEjection()
    {
        var detector = new OutlierDetector(consecutiveFailures: 1, baseEjectionMs: BaseMs, maxEjectionMs: MaxMs);
        detector.OnFailure(0);

        Assert.Multiple(() =>
        {
            Assert.That(detector.OnFailure(500), Is.False);
            Assert.That(detector.EjectedUntilMs, Is.EqualTo(BaseMs));
        });
    }

    [Test]
    public void Budget_CapsEjectionsAtTheMaxPercentOfTheCluster()
    {
        OutlierDetector[] detectors = [.. Enumerable.Range(0, 10).Select(_ => new OutlierDetector(1, BaseMs, MaxMs))];
        var budget = new EjectionBudget(detectors, maxEjectionPercent: 30);

        int ejected = detectors.Count(d => d.OnFailure(0, budget));

        Assert.Multiple(() =>
        {
            Assert.That(budget.MaxEjected, Is.EqualTo(3));
            Assert.That(ejected, Is.EqualTo(3));
            Assert.That(budget.CountEjected(0), Is.EqualTo(3));
            Assert.That(budget.Refused, Is.EqualTo(7));
        });
    }

    [Test]
    public void Budget_FreesUpWhenAnEjectionExpires()
    {
        OutlierDetector[] detectors = [new(1, BaseMs, MaxMs), new(1, BaseMs, MaxMs)];
        var budget = new EjectionBudget(detectors, maxEjectionPercent: 50);
        Assert.That(detectors[0].OnFailure(0, budget), Is.True);
        Assert.That(detectors[1].OnFailure(0, budget), Is.False, "the budget allows one of two");

        Assert.That(detectors[1].OnFailure(BaseMs, budget), Is.True, "the first ejection has expired");
    }

    [Test]
    public void Budget_AllowsAtLeastOneEjection_WhenThePercentRoundsToZero()
    {
        OutlierDetector[] detectors = [new(1, BaseMs, MaxMs), new(1, BaseMs, MaxMs), new(1, BaseMs, MaxMs)];

        Assert.Multiple(() =>
        {
            Assert.That(new EjectionBudget(detectors, maxEjectionPercent: 10).MaxEjected, Is.EqualTo(1));
            Assert.That(new EjectionBudget(detectors, maxEjectionPercent: 0).MaxEjected, Is.Zero);
        });
    }

    [Test]
    public void Budget_HoldsUnderConcurrentFailures()
    {
        OutlierDetector[] detectors = [.. Enumerable.Range(0, 20).Select(_ => new OutlierDetector(3, BaseMs, MaxMs))];
        var budget = new EjectionBudget(detectors, maxEjectionPercent: 25);

        Parallel.For(0, 20 * 50, i => detectors[i % detectors.Length].OnFailure(0, budget));

        Assert.That(budget.CountEjected(0), Is.EqualTo(5));
    }
}
