using System.Net;
using Router.Core.Configuration;

namespace Router.EmbeddingTests.Support;

internal static class Configs
{
    /// <summary>One route for every request, to one upstream.</summary>
    public static RouterConfig RouteEverythingTo(IPEndPoint upstream) => new()
    {
        Routes = [new RouteConfig { Id = "all", Match = new RouteMatch { PathPrefix = "/" }, Cluster = "app" }],
        Clusters = [new ClusterConfig { Id = "app", Destinations = [new DestinationConfig { Address = upstream.ToString() }] }],
    };

    public static string Json(IPEndPoint upstream) =>
        $$"""{ "routes": [ { "id": "all", "match": { "pathPrefix": "/" }, "cluster": "app" } ], "clusters": [ { "id": "app", "destinations": [ { "address": "{{upstream}}" } ] } ] }""";
}
