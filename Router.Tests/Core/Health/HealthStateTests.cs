using NUnit.Framework;
using Router.Core.Health;

namespace Router.Tests.Core.Health;

public sealed class HealthStateTests
{
    [Test]
    public void NewState_IsHealthy()
        => Assert.That(new HealthState().IsHealthy, Is.True);

    [Test]
    public void FailedProbes_AtUnhealthyThreshold_MarkUnhealthy()
    {
        var state = new HealthState(unhealthyThreshold: 3, healthyThreshold: 2);

        state.OnProbe(false);
        state.OnProbe(false);
        Assert.That(state.IsHealthy, Is.True);
        state.OnProbe(false);

        Assert.Multiple(() =>
        {
            Assert.That(state.IsHealthy, Is.False);
            Assert.That(state.ConsecutiveFailures, Is.EqualTo(3));
            Assert.That(state.FailedProbeCount, Is.EqualTo(3));
            Assert.That(state.TransitionCount, Is.EqualTo(1));
        });
    }

    [Test]
    public void SuccessfulProbe_BreaksAFailureRun()
    {
        var state = new HealthState(unhealthyThreshold: 2, healthyThreshold: 1);

        state.OnProbe(false);
        state.OnProbe(true);
        state.OnProbe(false);

        Assert.That(state.IsHealthy, Is.True);
    }

    [Test]
    public void SuccessfulProbes_AtHealthyThreshold_MarkHealthyAgain()
    {
        var state = new HealthState(unhealthyThreshold: 1, healthyThreshold: 3);
        state.OnProbe(false);
        Assert.That(state.IsHealthy, Is.False);

        state.OnProbe(true);
        state.OnProbe(true);
        Assert.That(state.IsHealthy, Is.False);
        state.OnProbe(true);

        Assert.Multiple(() =>
        {
            Assert.That(state.IsHealthy, Is.True);
            Assert.That(state.ConsecutiveSuccesses, Is.EqualTo(3));
            Assert.That(state.ProbeCount, Is.EqualTo(4));
            Assert.That(state.TransitionCount, Is.EqualTo(2));
        });
    }

    [Test]
    public void Changed_IsRaisedOncePerTransition_WithTheNewHealth()
    {
        var state = new HealthState(unhealthyThreshold: 2, healthyThreshold: 2);
        var seen = new List<bool>();
        state.Changed += (s, healthy) =>
        {
            Assert.That(s, Is.SameAs(state));
            seen.Add(healthy);
        };

        foreach (bool ok in (bool[])[false, false, false, false, true, true, true])
        {
            state.OnProbe(ok);
        }

        Assert.That(seen, Is.EqualTo((bool[])[false, true]));
    }
}
