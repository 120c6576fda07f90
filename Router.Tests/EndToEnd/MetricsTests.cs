using System.Net;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>GET /metrics under load: valid Prometheus text, and counters that agree with what clients saw.</summary>
public sealed class MetricsTests
{
    [Test]
    public async Task Metrics_ScrapedDuringLoad_ParseAndMatchWhatClientsSaw()
    {
        await using var upstream = await TestUpstream.StartAsync("A");
        var config = new RouterConfig
        {
            Routes = [Route("api", "a", "/api/", hosts: ["api.test"]), Route("web", "a", "/", hosts: ["web.test"])],
            Clusters = [Cluster("a", upstream)],
        };
        await using var router = RouterFixture.Start(config);
        using var client = new HttpClient { BaseAddress = router.BaseUri };

        async Task<HttpStatusCode> Send(string host, string path)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Host = host;
            using var response = await client.SendAsync(request);
            return response.StatusCode;
        }

        var load = Task.WhenAll(Enumerable.Range(0, 300).Select(i => (i % 6) switch
        {
            0 => Send("web.test", "/status/500"),
            1 => Send("nowhere.test", "/x"),
            _ => Send(i % 2 == 0 ? "api.test" : "web.test", i % 2 == 0 ? "/api/items" : "/page"),
        }));

        // Scrapes taken while the load runs must parse too.
        while (!load.IsCompleted)
        {
            PrometheusText.Parse(await router.AdminGetAsync("/metrics"));
        }

        var statuses = await load;

        // A request is counted right after its response went out, so the last ones can trail the clients by a moment.
        IReadOnlyList<PrometheusSample> samples = [];
        for (var deadline = DateTime.UtcNow.AddSeconds(5); DateTime.UtcNow < deadline; await Task.Delay(10))
        {
            samples = PrometheusText.Parse(await router.AdminGetAsync("/metrics"));
            if (samples.Value("router_request_duration_seconds_count") >= 300)
            {
                break;
            }
        }

        int api2xx = statuses.Where((s, i) => i % 6 is not 0 and not 1 && i % 2 == 0).Count(s => s == HttpStatusCode.OK);
        int web2xx = statuses.Where((s, i) => i % 6 is not 0 and not 1 && i % 2 == 1).Count(s => s == HttpStatusCode.OK);
        Assert.Multiple(() =>
        {
            Assert.That(samples.Value("router_requests_total", ("route", "api"), ("cluster", "a"), ("code_class", "2xx")), Is.EqualTo(api2xx));
            Assert.That(samples.Value("router_requests_total", ("route", "web"), ("cluster", "a"), ("code_class", "2xx")), Is.EqualTo(web2xx));
            Assert.That(statuses.Count(s => s == HttpStatusCode.InternalServerError), Is.EqualTo(50));
            Assert.That(samples.Value("router_requests_total", ("route", "web"), ("code_class", "5xx")), Is.EqualTo(50));
            Assert.That(samples.Value("router_requests_total", ("route", ""), ("code_class", "4xx")), Is.EqualTo(statuses.Count(s => s == HttpStatusCode.NotFound)));
            Assert.That(samples.Value("router_request_duration_seconds_count"), Is.EqualTo(300));
            Assert.That(samples.Value("router_request_duration_seconds_bucket", ("route", "api"), ("le", "+Inf")),
                Is.EqualTo(samples.Value("router_request_duration_seconds_count", ("route", "api"))));
            Assert.That(samples.Value("router_requests_shed_total"), Is.Zero);
            Assert.That(samples.Value("router_config_generation"), Is.EqualTo(1));
            Assert.That(samples.Value("router_config_reloads_total", ("result", "success")), Is.EqualTo(1));
            Assert.That(samples.Value("router_destination_healthy", ("cluster", "a")), Is.EqualTo(1));
            Assert.That(samples.Any(s => s.Name == "router_client_connections"), Is.True);
        });

        // Buckets are cumulative.
        var buckets = samples.Where(s => s.Name == "router_request_duration_seconds_bucket" && s.Labels["route"] == "web").Select(s => s.Value).ToArray();
        Assert.That(buckets, Is.Ordered);
    }

    [Test]
    public async Task Metrics_CountShedRequestsAndUpstreamFailures()
    {
        var config = new RouterConfig
        {
            Routes = [Route("r", "dead")],
            Clusters = [new ClusterConfig { Id = "dead", Destinations = [new DestinationConfig { Address = "127.0.0.1:1" }] }],
        };
        await using var router = RouterFixture.Start(config);
        using var client = new HttpClient { BaseAddress = router.BaseUri };
        for (int i = 0; i < 5; i++)
        {
            using var response = await client.GetAsync(new Uri("/x", UriKind.Relative));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadGateway));
        }

        IReadOnlyList<PrometheusSample> samples = [];
        for (var deadline = DateTime.UtcNow.AddSeconds(5); DateTime.UtcNow < deadline; await Task.Delay(10))
        {
            samples = PrometheusText.Parse(await router.AdminGetAsync("/metrics"));
            if (samples.Value("router_requests_total", ("route", "r")) >= 5)
            {
                break;
            }
        }

        Assert.That(samples.Value("router_upstream_failures_total", ("cluster", "dead"), ("reason", "connect")), Is.EqualTo(5));
        Assert.That(samples.Value("router_requests_total", ("route", "r"), ("code_class", "5xx")), Is.EqualTo(5));
    }
}
