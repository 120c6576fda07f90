using System.Text;
using Router.Core.Configuration;
using Router.Core.Routing;

namespace Router.Tests.Core.Routing;

/// <summary>Small builders so each test states only the routes it is about.</summary>
internal static class RoutingTestConfigs
{
    public static readonly SnapshotInfo Info = new(1, "hash", "test", DateTimeOffset.UnixEpoch);

    public static RouteConfig Route(string id, string prefix = "/", string[]? hosts = null, string[]? methods = null, string cluster = "c") =>
        new()
        {
            Id = id,
            Cluster = cluster,
            Match = new RouteMatch { PathPrefix = prefix, Hosts = hosts ?? [], Methods = methods ?? [] },
        };

    public static ClusterConfig Cluster(string id, params string[] addresses) =>
        new() { Id = id, Destinations = [.. addresses.Select(a => new DestinationConfig { Address = a })] };

    public static RoutingSnapshot Compile(params RouteConfig[] routes) =>
        RoutingSnapshot.Compile(
            new RouterConfig { Routes = routes, Clusters = [Cluster("c", "127.0.0.1:9001")] },
            Info,
            previous: null);

    /// <summary>The id of the matched route, or null for no match (the data plane's 404).</summary>
    public static string? MatchId(this RoutingSnapshot snapshot, string host, string path, string method = "GET") =>
        snapshot.TryMatch(Encoding.UTF8.GetBytes(host), Encoding.UTF8.GetBytes(path), Encoding.UTF8.GetBytes(method), out var route)
            ? route.Id
            : null;
}
