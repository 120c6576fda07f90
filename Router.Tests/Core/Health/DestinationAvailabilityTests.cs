using NUnit.Framework;
using Router.Core.Health;
using Router.Core.Resilience;

namespace Router.Tests.Core.Health;

public sealed class DestinationAvailabilityTests
{
    [Test]
    public void NoGatesConfigured_IsAvailable()
        => Assert.That(DestinationAvailability.IsAvailable(null, null, null, 0), Is.True);

    [Test]
    public void AllGatesHealthy_IsAvailable()
        => Assert.That(DestinationAvailability.IsAvailable(new HealthState(), new OutlierDetector(), new CircuitBreaker(5, 1000), 0), Is.True);

    [Test]
    public void ActivelyUnhealthy_IsUnavailable()
    {
        var health = new HealthState(unhealthyThreshold: 1);
        health.OnProbe(false);

        Assert.That(DestinationAvailability.IsAvailable(health, new OutlierDetector(), new CircuitBreaker(5, 1000), 0), Is.False);
    }

    [Test]
    public void Ejected_IsUnavailableUntilTheEjectionEnds()
    {
        var outlier = new OutlierDetector(consecutiveFailures: 1, baseEjectionMs: 1000);
        outlier.OnFailure(0);

        Assert.Multiple(() =>
        {
            Assert.That(DestinationAvailability.IsAvailable(null, outlier, null, 999), Is.False);
            Assert.That(DestinationAvailability.IsAvailable(null, outlier, null, 1000), Is.True);
        });
    }

    [Test]
    public void BreakerOpen_IsUnavailableUntilTheBreakEnds()
    {
        var breaker = new CircuitBreaker(consecutiveFailures: 1, breakMs: 1000);
        breaker.TryAcquire(0, out BreakerPermit permit);
        breaker.OnFailure(0, permit);

        Assert.Multiple(() =>
        {
            Assert.That(DestinationAvailability.IsAvailable(null, null, breaker, 999), Is.False);
            Assert.That(DestinationAvailability.IsAvailable(null, null, breaker, 1000), Is.True);
        });
    }
}
