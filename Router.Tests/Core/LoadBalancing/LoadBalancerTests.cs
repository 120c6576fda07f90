using NUnit.Framework;
using Router.Core.Configuration;
using Router.Core.LoadBalancing;
using Router.Core.Routing;
using static Router.Tests.Core.Routing.RoutingTestConfigs;

namespace Router.Tests.Core.LoadBalancing;

public sealed class LoadBalancerTests
{
    private static readonly string[] TwoCycles =
    [
        "127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003",
        "127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003",
    ];

    private static ClusterState NewCluster(string policy, int destinations)
    {
        var config = new RouterConfig
        {
            Clusters = [Cluster("c", [.. Enumerable.Range(1, destinations).Select(i => $"127.0.0.1:{9000 + i}")]) with { LoadBalancing = policy }],
            Routes = [Route("r")],
        };
        return RoutingSnapshot.Compile(config, Info, null).Clusters[0];
    }

    private static string[] PickAddresses(ClusterState cluster, int count) =>
        [.. Enumerable.Range(0, count).Select(_ => LoadBalancer.PickAvailable(cluster)!.Address)];

    [Test]
    public void RoundRobin_CyclesThroughDestinationsInOrder()
    {
        var cluster = NewCluster("roundRobin", 3);

        Assert.That(PickAddresses(cluster, 6), Is.EqualTo(TwoCycles));
    }

    [Test]
    public void RoundRobin_SkipsUnavailableAndSharesEvenlyAmongTheRest()
    {
        var cluster = NewCluster("roundRobin", 3);
        cluster.Destinations[1].Disabled = true;

        var counts = PickAddresses(cluster, 100).GroupBy(a => a).ToDictionary(g => g.Key, g => g.Count());

        Assert.That(counts, Is.EqualTo(new Dictionary<string, int> { ["127.0.0.1:9001"] = 50, ["127.0.0.1:9003"] = 50 }));
    }

    [Test]
    public void RoundRobin_KeepsCyclingWhenTheCursorWraps()
    {
        var cluster = NewCluster("roundRobin", 3);
        cluster.RoundRobinCursor = int.MaxValue - 1;

        Assert.That(PickAddresses(cluster, 5), Has.All.Not.Null);
    }

    [Test]
    public void RoundRobin_OverCallerFilteredCandidates_Cycles()
    {
        var cluster = NewCluster("roundRobin", 3);
        var candidates = new[] { cluster.Destinations[2], cluster.Destinations[0] };

        var picks = Enumerable.Range(0, 4).Select(_ => LoadBalancer.Pick(cluster, candidates)).ToArray();

        Assert.That(picks, Is.EqualTo(new[] { candidates[0], candidates[1], candidates[0], candidates[1] }));
    }

    [Test]
    public void LeastRequests_PicksTheLeastLoadedDestination()
    {
        var cluster = NewCluster("leastRequests", 3);
        cluster.Destinations[0].InFlight = 5;
        cluster.Destinations[1].InFlight = 2;
        cluster.Destinations[2].InFlight = 7;

        Assert.That(LoadBalancer.PickAvailable(cluster), Is.SameAs(cluster.Destinations[1]));
    }

    [Test]
    public void LeastRequests_SkipsUnavailableEvenWhenIdle()
    {
        var cluster = NewCluster("leastRequests", 3);
        cluster.Destinations[0].InFlight = 5;
        cluster.Destinations[1].Disabled = true;
        cluster.Destinations[2].InFlight = 7;

        Assert.That(LoadBalancer.PickAvailable(cluster), Is.SameAs(cluster.Destinations[0]));
    }

    [Test]
    public void LeastRequests_SpreadsLoadAsRequestsStayInFlight()
    {
        var cluster = NewCluster("leastRequests", 4);

        for (var i = 0; i < 40; i++)
        {
            Interlocked.Increment(ref LoadBalancer.PickAvailable(cluster)!.InFlight);
        }

        Assert.That(cluster.Destinations.Select(d => d.InFlight), Is.All.EqualTo(10));
    }

    [Test]
    public void PowerOfTwoChoices_NeverPicksTheBusierOfTwo()
    {
        var cluster = NewCluster("powerOfTwoChoices", 2);
        cluster.Destinations[0].InFlight = 3;
        cluster.Destinations[1].InFlight = 1;

        // With two candidates both are always drawn, so the busier one must never win.
        for (var i = 0; i < 200; i++)
        {
            Assert.That(LoadBalancer.PickAvailable(cluster), Is.SameAs(cluster.Destinations[1]));
        }
    }

    [Test]
    public void PowerOfTwoChoices_NeverPicksTheBusiestDestination()
    {
        var cluster = NewCluster("powerOfTwoChoices", 5);
        for (var i = 0; i < 5; i++)
        {
            cluster.Destinations[i].InFlight = i == 3 ? 100 : i;
        }

        var picks = Enumerable.Range(0, 500).Select(_ => LoadBalancer.PickAvailable(cluster)).ToHashSet();

        Assert.Multiple(() =>
        {
            Assert.That(picks, Does.Not.Contain(cluster.Destinations[3]), "the busiest loses every pair it is drawn in");
            Assert.That(picks, Has.Count.EqualTo(4), "every other one wins some pairs");
        });
    }

    [Test]
    public void PowerOfTwoChoices_SkipsUnavailable()
    {
        var cluster = NewCluster("powerOfTwoChoices", 3);
        cluster.Destinations[0].Disabled = true;
        cluster.Destinations[2].Disabled = true;

        Assert.That(PickAddresses(cluster, 50), Is.All.EqualTo("127.0.0.1:9002"));
    }

    [TestCase("roundRobin")]
    [TestCase("leastRequests")]
    [TestCase("powerOfTwoChoices")]
    public void Pick_ReturnsNullWhenNoDestinationIsAvailable(string policy)
    {
        var cluster = NewCluster(policy, 3);
        foreach (var destination in cluster.Destinations)
        {
            destination.Disabled = true;
        }

        Assert.Multiple(() =>
        {
            Assert.That(LoadBalancer.PickAvailable(cluster), Is.Null);
            Assert.That(LoadBalancer.Pick(cluster, ReadOnlySpan<DestinationState>.Empty), Is.Null);
        });
    }

    [TestCase("roundRobin")]
    [TestCase("leastRequests")]
    [TestCase("powerOfTwoChoices")]
    public void Pick_WithEmptyCluster_ReturnsNull(string policy) =>
        Assert.That(LoadBalancer.PickAvailable(NewCluster(policy, 0)), Is.Null);

    [TestCase("roundRobin")]
    [TestCase("leastRequests")]
    [TestCase("powerOfTwoChoices")]
    public void Pick_AllocatesNothing(string policy)
    {
        var cluster = NewCluster(policy, 4);
        cluster.Destinations[2].Disabled = true;
        LoadBalancer.PickAvailable(cluster);

        // The runtime may allocate once on this thread while it tiers the code up: require one clean run of several.
        long least = long.MaxValue;
        for (var run = 0; run < 4; run++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < 1000; i++)
            {
                LoadBalancer.PickAvailable(cluster);
                LoadBalancer.Pick(cluster, cluster.Destinations.AsSpan(1));
            }

            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        Assert.That(least, Is.Zero);
    }
}
