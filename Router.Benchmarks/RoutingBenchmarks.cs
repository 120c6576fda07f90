using System.Text;
using BenchmarkDotNet.Attributes;
using Router.Core.Configuration;
using Router.Core.Routing;

namespace Router.Benchmarks;

/// <summary>
/// Route matching against configs of growing size. Each exact-host route has its own host and prefix, so an
/// exact-host match that stays flat from 10 to 10,000 routes shows the lookup does not scan routes.
/// The config also holds RouteCount / 10 wildcard routes and one catch-all route. Host names are zero-padded so
/// every size hashes the same number of bytes.
/// </summary>
[MemoryDiagnoser]
public class RoutingBenchmarks
{
    private static readonly SnapshotInfo Info = new(1, "bench", "bench", DateTimeOffset.UnixEpoch);

    private RouterConfig _config = null!;
    private RoutingSnapshot _snapshot = null!;
    private byte[] _exactHost = null!;
    private byte[] _exactPath = null!;
    private byte[] _wildcardHost = null!;
    private byte[] _wildcardPath = null!;
    private readonly byte[] _missHost = "nowhere.example.test:8080"u8.ToArray();
    private readonly byte[] _missPath = "/not/routed"u8.ToArray();
    private readonly byte[] _get = "GET"u8.ToArray();

    [Params(10, 1_000, 10_000)]
    public int RouteCount { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var wildcards = WildcardCount(RouteCount);
        _config = CreateConfig(RouteCount);
        _snapshot = RoutingSnapshot.Compile(_config, Info, null);

        // Mixed case and a port: the realistic Host header, not the stored key.
        var middle = RouteCount / 2;
        _exactHost = Encoding.ASCII.GetBytes($"Host{middle:D5}.Example.test:443");
        _exactPath = Encoding.ASCII.GetBytes($"/svc{middle}/users/42");
        _wildcardHost = Encoding.ASCII.GetBytes($"shop.eu.tenant{wildcards / 2:D4}.example.test");
        _wildcardPath = "/app/cart"u8.ToArray();

        if (!_snapshot.TryMatch(_exactHost, _exactPath, _get, out _)
            || !_snapshot.TryMatch(_wildcardHost, _wildcardPath, _get, out _)
            || _snapshot.TryMatch(_missHost, _missPath, _get, out _))
        {
            throw new InvalidOperationException("Benchmark config does not route as intended.");
        }
    }

    [Benchmark(Baseline = true)]
    public object? MatchExactHost()
    {
        _snapshot.TryMatch(_exactHost, _exactPath, _get, out var route);
        return route;
    }

    [Benchmark]
    public object? MatchWildcardHost()
    {
        _snapshot.TryMatch(_wildcardHost, _wildcardPath, _get, out var route);
        return route;
    }

    [Benchmark]
    public object? MatchMiss()
    {
        _snapshot.TryMatch(_missHost, _missPath, _get, out var route);
        return route;
    }

    internal static RouterConfig CreateConfig(int routeCount)
    {
        var wildcards = WildcardCount(routeCount);
        var routes = new List<RouteConfig>(routeCount + wildcards + 1);
        for (var i = 0; i < routeCount; i++)
        {
            routes.Add(new RouteConfig
            {
                Id = $"exact-{i}",
                Cluster = "c",
                Match = new RouteMatch { Hosts = [$"host{i:D5}.example.test"], PathPrefix = $"/svc{i}/", Methods = ["GET", "POST"] },
            });
        }

        for (var i = 0; i < wildcards; i++)
        {
            routes.Add(new RouteConfig
            {
                Id = $"wild-{i}",
                Cluster = "c",
                Match = new RouteMatch { Hosts = [$"*.tenant{i:D4}.example.test"], PathPrefix = "/app/" },
            });
        }

        routes.Add(new RouteConfig { Id = "static", Cluster = "c", Match = new RouteMatch { PathPrefix = "/static/" } });

        return new RouterConfig
        {
            Routes = routes,
            Clusters = [new ClusterConfig { Id = "c", Destinations = [new DestinationConfig { Address = "127.0.0.1:9001" }] }],
        };
    }

    private static int WildcardCount(int routeCount) => Math.Max(1, routeCount / 10);
}

/// <summary>Compiling a config of growing size (what a reload costs before the swap).</summary>
[MemoryDiagnoser]
public class RoutingCompileBenchmarks
{
    private static readonly SnapshotInfo Info = new(1, "bench", "bench", DateTimeOffset.UnixEpoch);

    private RouterConfig _config = null!;

    [Params(10, 1_000, 10_000)]
    public int RouteCount { get; set; }

    [GlobalSetup]
    public void Setup() => _config = RoutingBenchmarks.CreateConfig(RouteCount);

    [Benchmark(Baseline = true)]
    public object Compile() => RoutingSnapshot.Compile(_config, Info, null);
}
