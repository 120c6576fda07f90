using System.Net;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Core.LoadBalancing;
using Router.Core.Routing;
using static Router.Tests.Core.Routing.RoutingTestConfigs;

namespace Router.Tests.Core.Routing;

public sealed class RoutingSnapshotCompileTests
{
    private static readonly string[] OnlyFirstAddress = ["127.0.0.1:1"];

    private static RouterConfig Config(params ClusterConfig[] clusters) => new()
    {
        Clusters = clusters,
        Routes = [.. clusters.Select(c => Route("r-" + c.Id, cluster: c.Id))],
    };

    [Test]
    public void Compile_ResolvesRoutesToClustersAndFallbacks()
    {
        var config = new RouterConfig
        {
            Clusters = [Cluster("api", "127.0.0.1:9001"), Cluster("static", "127.0.0.1:9100")],
            Routes = [Route("api", cluster: "api") with { FallbackCluster = "static", TimeoutMs = 1234 }],
        };

        var snapshot = RoutingSnapshot.Compile(config, Info, null);
        var route = snapshot.Routes.Single();

        Assert.Multiple(() =>
        {
            Assert.That(route.Cluster.Id, Is.EqualTo("api"));
            Assert.That(route.Fallback!.Id, Is.EqualTo("static"));
            Assert.That(route.ResponseTimeoutMs, Is.EqualTo(1234));
            Assert.That(route.IdUtf8, Is.EqualTo("api"u8.ToArray()));
            Assert.That(route.Cluster.IdUtf8, Is.EqualTo("api"u8.ToArray()));
            Assert.That(snapshot.TryGetCluster("static", out var found) ? found : null, Is.SameAs(route.Fallback));
            Assert.That(snapshot.TryGetCluster("nope", out _), Is.False);
            Assert.That(snapshot.Info, Is.SameAs(Info));
            Assert.That(snapshot.Config, Is.SameAs(config));
        });
    }

    [TestCase("roundRobin", nameof(LoadBalancingPolicy.RoundRobin))]
    [TestCase("leastRequests", nameof(LoadBalancingPolicy.LeastRequests))]
    [TestCase("PowerOfTwoChoices", nameof(LoadBalancingPolicy.PowerOfTwoChoices))]
    [TestCase("unknown", nameof(LoadBalancingPolicy.RoundRobin))]
    public void Compile_SetsClusterLoadBalancingPolicy(string name, string expected)
    {
        var snapshot = RoutingSnapshot.Compile(Config(Cluster("c", "127.0.0.1:1") with { LoadBalancing = name }), Info, null);

        Assert.That(snapshot.Clusters[0].LoadBalancer.ToString(), Is.EqualTo(expected));
    }

    [TestCase("127.0.0.1:9001", "127.0.0.1", 9001)]
    [TestCase("[::1]:8080", "::1", 8080)]
    [TestCase("localhost:80", "127.0.0.1", 80)]
    [TestCase("LOCALHOST:81", "127.0.0.1", 81)]
    public void Compile_ParsesIpAddressesAndLocalhostToIpEndPoints(string address, string ip, int port)
    {
        var snapshot = RoutingSnapshot.Compile(Config(Cluster("c", address)), Info, null);

        Assert.That(snapshot.Clusters[0].Destinations[0].EndPoint, Is.EqualTo(new IPEndPoint(IPAddress.Parse(ip), port)));
    }

    [Test]
    public void Compile_ParsesNamesToDnsEndPoints()
    {
        var snapshot = RoutingSnapshot.Compile(Config(Cluster("c", "backend.internal:8443")), Info, null);

        Assert.That(snapshot.Clusters[0].Destinations[0].EndPoint, Is.EqualTo(new DnsEndPoint("backend.internal", 8443)));
    }

    [TestCase("127.0.0.1")]
    [TestCase("host:0")]
    [TestCase("host:70000")]
    [TestCase(":80")]
    [TestCase("[::1]")]
    [TestCase("::1:80")]
    public void DestinationAddress_RejectsMalformedAddresses(string address) =>
        Assert.That(DestinationAddress.TryParse(address, out _), Is.False);

    [Test]
    public void Recompile_ReusesDestinationStateForSameClusterAndAddress()
    {
        var first = RoutingSnapshot.Compile(Config(Cluster("c", "127.0.0.1:1", "127.0.0.1:2")), Info, null);
        var kept = first.Clusters[0].Destinations[1];
        Interlocked.Increment(ref kept.InFlight);
        kept.Pool = new object();

        // Cluster changed (policy and one address), but 127.0.0.1:2 is still in it.
        var second = RoutingSnapshot.Compile(
            Config(Cluster("c", "127.0.0.1:2", "127.0.0.1:3") with { LoadBalancing = "leastRequests" }),
            Info,
            first);

        Assert.Multiple(() =>
        {
            Assert.That(second.Clusters[0], Is.Not.SameAs(first.Clusters[0]));
            Assert.That(second.Clusters[0].Destinations[0], Is.SameAs(kept));
            Assert.That(second.Clusters[0].Destinations[0].InFlight, Is.EqualTo(1));
            Assert.That(second.Clusters[0].Destinations[1].Address, Is.EqualTo("127.0.0.1:3"));
            Assert.That(second.RemovedSince(first).Select(d => d.Address), Is.EqualTo(OnlyFirstAddress));
        });
    }

    [Test]
    public void Recompile_WithUnchangedCluster_ReusesClusterStateAndItsCounters()
    {
        var first = RoutingSnapshot.Compile(Config(Cluster("c", "127.0.0.1:1")), Info, null);
        Interlocked.Increment(ref first.Clusters[0].InFlight);

        // A fresh parse of the same config: equal values, different list instances.
        var second = RoutingSnapshot.Compile(Config(Cluster("c", "127.0.0.1:1")), Info, first);

        Assert.Multiple(() =>
        {
            Assert.That(second.Clusters[0], Is.SameAs(first.Clusters[0]));
            Assert.That(second.Clusters[0].InFlight, Is.EqualTo(1));
            Assert.That(second.RemovedSince(first), Is.Empty);
        });
    }

    [Test]
    public void Recompile_DestinationMovedToAnotherCluster_StartsFresh()
    {
        var first = RoutingSnapshot.Compile(Config(Cluster("a", "127.0.0.1:1"), Cluster("b", "127.0.0.1:2")), Info, null);
        var moved = first.Clusters[0].Destinations[0];

        var second = RoutingSnapshot.Compile(Config(Cluster("b", "127.0.0.1:2", "127.0.0.1:1")), Info, first);

        Assert.Multiple(() =>
        {
            Assert.That(second.Clusters[0].Destinations[0], Is.SameAs(first.Clusters[1].Destinations[0]));
            Assert.That(second.Clusters[0].Destinations[1], Is.Not.SameAs(moved));
            Assert.That(second.Clusters[0].Destinations[1].ClusterId, Is.EqualTo("b"));
            Assert.That(second.RemovedSince(first), Is.EqualTo(new[] { moved }));
        });
    }

    [Test]
    public void RemovedSince_ListsEveryDestinationOfRemovedClusters()
    {
        var first = RoutingSnapshot.Compile(Config(Cluster("a", "127.0.0.1:1", "127.0.0.1:2"), Cluster("b", "127.0.0.1:3")), Info, null);

        var second = RoutingSnapshot.Compile(Config(Cluster("b", "127.0.0.1:3")), Info, first);

        Assert.That(second.RemovedSince(first), Is.EquivalentTo(first.Clusters[0].Destinations));
    }

    [Test]
    public void Compile_WithoutPrevious_CreatesFreshAvailableStates()
    {
        var snapshot = RoutingSnapshot.Compile(Config(Cluster("c", "127.0.0.1:1")), Info, null);
        var destination = snapshot.Clusters[0].Destinations[0];

        Assert.Multiple(() =>
        {
            Assert.That(destination.InFlight, Is.Zero);
            Assert.That(destination.Pool, Is.Null);
            Assert.That(destination.IsAvailable, Is.True);
        });
    }
}
