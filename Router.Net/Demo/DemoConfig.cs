using System.Net;
using Router.Core.Configuration;

namespace Router.Net.Demo;

/// <summary>The embedded demo: two upstreams and a config that routes to them.</summary>
internal static class DemoConfig
{
    public static RouterConfig Create(IPEndPoint a, IPEndPoint b) => new()
    {
        Routes =
        [
            new RouteConfig { Id = "api", Match = new RouteMatch { PathPrefix = "/api/" }, Cluster = "api", FallbackCluster = "web" },
            new RouteConfig { Id = "demo-host", Match = new RouteMatch { Hosts = ["*.demo.test"], PathPrefix = "/" }, Cluster = "b-only" },
            new RouteConfig { Id = "web", Match = new RouteMatch { PathPrefix = "/" }, Cluster = "web" },
        ],
        Clusters =
        [
            new ClusterConfig
            {
                Id = "api",
                Destinations = [new DestinationConfig { Address = a.ToString() }, new DestinationConfig { Address = b.ToString() }],
                LoadBalancing = "roundRobin",
            },
            new ClusterConfig { Id = "web", Destinations = [new DestinationConfig { Address = a.ToString() }] },
            new ClusterConfig { Id = "b-only", Destinations = [new DestinationConfig { Address = b.ToString() }] },
        ],
    };
}
