using System.Net;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Router.Core.Configuration;
using Router.Net.Hosting;
using Router.Net.Http1;

namespace Router.Tests.Support;

/// <summary>A router running in-process on ephemeral loopback ports.</summary>
internal sealed class RouterFixture : IAsyncDisposable
{
    private RouterFixture(RouterHost host)
    {
        Host = host;
    }

    public RouterHost Host { get; }

    public IPEndPoint EndPoint => Host.ListenEndPoints[0];

    public IPEndPoint AdminEndPoint => Host.AdminEndPoint!;

    public Uri BaseUri => new($"http://{EndPoint}/");

    public static RouterFixture Start(RouterConfig config, HttpLimits? limits = null, ILoggerFactory? loggerFactory = null, Action<RouterHostOptions>? configure = null)
    {
        var options = new RouterHostOptions
        {
            Admin = new IPEndPoint(IPAddress.Loopback, 0),
            Limits = limits ?? HttpLimits.Default,
            HeartbeatPeriod = TimeSpan.FromMilliseconds(100),
        };
        configure?.Invoke(options);
        options.Listen.Add(new IPEndPoint(IPAddress.Loopback, 0));
        var host = new RouterHost(options, loggerFactory ?? NullLoggerFactory.Instance);
        var outcome = host.Applier.Apply(config, "test");
        if (!outcome.Applied)
        {
            throw new InvalidOperationException("test config invalid: " + string.Join("; ", outcome.Errors));
        }

        host.Start();
        return new RouterFixture(host);
    }

    public async Task<string> AdminGetAsync(string path)
    {
        using var client = new HttpClient();
        return await client.GetStringAsync(new Uri($"http://{AdminEndPoint}{path}"));
    }

    public ValueTask DisposeAsync() => Host.DisposeAsync();
}

/// <summary>Small builders for test configs.</summary>
internal static class TestConfigs
{
    public static ClusterConfig Cluster(string id, params TestUpstream[] upstreams) => new()
    {
        Id = id,
        Destinations = upstreams.Select(u => new DestinationConfig { Address = u.Address }).ToArray(),
    };

    public static RouteConfig Route(string id, string cluster, string prefix = "/", string[]? hosts = null, string? fallback = null) => new()
    {
        Id = id,
        Cluster = cluster,
        FallbackCluster = fallback,
        Match = new RouteMatch { PathPrefix = prefix, Hosts = hosts ?? [] },
    };

    public static string Ascii(ReadOnlySpan<byte> bytes) => Encoding.ASCII.GetString(bytes);
}
