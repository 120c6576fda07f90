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
    [Test]
    public async Task Metrics_ExportProcessAndRuntimeSeries_ThatFollowTheRoutersConnections()
    {
        // A real router process: the process_* series describe it, not the test runner.
        await using var upstream = await TestUpstream.StartAsync("A");
        await using var router = await RouterProcess.StartProxyingAsync(upstream.Address);
        using var admin = new HttpClient { BaseAddress = new Uri($"http://{router.AdminEndPoint}") };
        async Task<IReadOnlyList<PrometheusSample>> Scrape() => PrometheusText.Parse(await admin.GetStringAsync(new Uri("/metrics", UriKind.Relative)));

        var before = await Scrape();
        double now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        Assert.Multiple(() =>
        {
            Assert.That(before.Value("process_cpu_seconds_total"), Is.GreaterThan(0));
            Assert.That(before.Value("process_resident_memory_bytes"), Is.EqualTo(router.ResidentBytes()).Within(8 * 1024 * 1024));
            Assert.That(before.Value("process_start_time_seconds"), Is.InRange(now - 120, now));
            Assert.That(before.Value("process_max_fds"), Is.GreaterThanOrEqualTo(before.Value("process_open_fds")));
            Assert.That(before.Value("dotnet_gc_allocated_bytes_total"), Is.GreaterThan(0));
            Assert.That(before.Any(s => s.Name == "dotnet_gc_collections_total" && s.Labels["generation"] == "2"), Is.True);
            Assert.That(before.Value("dotnet_gc_heap_size_bytes"), Is.GreaterThanOrEqualTo(0));
            Assert.That(before.Value("dotnet_gc_pause_seconds_total"), Is.GreaterThanOrEqualTo(0));
        });

        // 100 kept-alive client connections, each after one request: every one holds a descriptor in the router.
        var clients = new List<RawHttpClient>();
        try
        {
            for (int i = 0; i < 100; i++)
            {
                var client = await RawHttpClient.ConnectAsync(router.EndPoint);
                clients.Add(client);
                await client.SendAsync("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
                var response = await client.ReadResponseAsync();
                Assert.That(response.StatusCode, Is.EqualTo(200));
            }

            var loaded = await Scrape();
            Assert.That(loaded.Value("process_open_fds"), Is.GreaterThanOrEqualTo(before.Value("process_open_fds") + 100));
            Assert.That(loaded.Value("dotnet_gc_allocated_bytes_total"), Is.GreaterThanOrEqualTo(before.Value("dotnet_gc_allocated_bytes_total")));
            Assert.That(loaded.Value("process_cpu_seconds_total"), Is.GreaterThanOrEqualTo(before.Value("process_cpu_seconds_total")));
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }

        // Closed by the clients, the descriptors go again (the router notices each FIN on its own schedule).
        IReadOnlyList<PrometheusSample> after = [];
        for (var deadline = DateTime.UtcNow.AddSeconds(10); DateTime.UtcNow < deadline; await Task.Delay(20))
        {
            after = await Scrape();
            if (after.Value("router_client_connections") == 0)
            {
                break;
            }
        }

        Assert.That(after.Value("process_open_fds"), Is.LessThan(before.Value("process_open_fds") + 20));
    }
}
