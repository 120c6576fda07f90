using NUnit.Framework;
using Router.Core.Configuration;
using Router.Core.Resilience;
using Router.Core.Routing;
using Router.Net.Forwarding;
using static Router.Tests.Core.Routing.RoutingTestConfigs;

namespace Router.Tests.Net.Forwarding;

public sealed class DestinationSelectorTests
{
    [Test]
    public void ABreakerThatRefusesAfterThePick_IsPassedOver_AndTheOtherDestinationIsChosen()
    {
        var breakerConfig = new CircuitBreakerConfig { ConsecutiveFailures = 1, BreakMs = 1_000, HalfOpenTrials = 1 };
        var config = new RouterConfig
        {
            Clusters = [Cluster("c", "127.0.0.1:9001", "127.0.0.1:9002") with { CircuitBreaker = breakerConfig }],
            Routes = [Route("r")],
        };
        var route = RoutingSnapshot.Compile(config, Info, null).Routes[0];
        var a = route.Cluster.Destinations[0];
        var breaker = a.Breaker!;

        // Failures reported as of two breaks ago open A with its break already over: available, one trial slot free.
        // Two breaks ago, and not before boot: the monotonic clock starts at 0 there, and a CI machine may be fresh.
        long past = MonotonicClock.NowMs - 2_000;
        breaker.OnFailure(past, default);

        // Another thread plays the concurrent requests: it takes A's only trial slot and fails the trial (reopening A
        // with the break over again), round after round. A pick that saw A available can find the slot taken when it
        // asks the breaker: the selector must then send to B, never give up on a cluster with B healthy.
        using var stop = new CancellationTokenSource();
        var flipper = Task.Factory.StartNew(
            () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    if (breaker.TryAcquire(MonotonicClock.NowMs, out BreakerPermit permit))
                    {
                        breaker.OnFailure(past, permit);
                    }
                }
            },
            TaskCreationOptions.LongRunning);

        int empty = 0;
        int toA = 0;
        try
        {
            for (int i = 0; i < 2_000_000 && empty == 0; i++)
            {
                var selection = DestinationSelector.Select(route, null, 0);
                if (selection.Destination is null)
                {
                    empty++;
                    continue;
                }

                if (ReferenceEquals(selection.Destination, a))
                {
                    toA++;
                    if (selection.Permit.IsTrial)
                    {
                        breaker.OnFailure(past, selection.Permit);
                    }
                }

                selection.Cluster!.Limit.Exit();
            }
        }
        finally
        {
            stop.Cancel();
            flipper.Wait();
        }

        TestContext.Out.WriteLine($"{toA} selections of A");
        Assert.That(empty, Is.Zero, "no selection came back empty while B was healthy");
        Assert.That(route.Cluster.Limit.Current, Is.Zero, "every selection's cluster slot was given back");
    }
}
