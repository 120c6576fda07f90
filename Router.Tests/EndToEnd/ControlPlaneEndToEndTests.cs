using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using NUnit.Framework;
using Router.Tests.Support;

namespace Router.Tests.EndToEnd;

/// <summary>
/// M3 end to end with real processes: one <c>router-cp</c> and three <c>router</c> executables on loopback, two Kestrel
/// upstreams. Each config version routes <c>/</c> to one upstream, so "served on the new config" is visible in the
/// response's <c>X-Upstream</c> header. The tests run in order on one fleet; each leaves the control plane running.
/// </summary>
[NonParallelizable]
public sealed class ControlPlaneEndToEndTests
{
    private const int RouterCount = 3;
    private const int PropagationChanges = 20;
    // Deadlines, not sleeps: generous because the suite shares 2 cores with other jobs.
    private static readonly TimeSpan Converge = TimeSpan.FromSeconds(20);

    private readonly RouterProcess?[] _routers = new RouterProcess?[RouterCount];
    private TestUpstream _a = null!;
    private TestUpstream _b = null!;
    private ControlPlaneProcess _cp = null!;
    private HttpClient _http = null!;
    private string _cacheRoot = null!;
    private int _configSerial;

    [OneTimeSetUp]
    public async Task StartFleet()
    {
        _a = await TestUpstream.StartAsync("A");
        _b = await TestUpstream.StartAsync("B");
        _http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(1) }) { Timeout = TimeSpan.FromSeconds(5) };
        _cp = await ControlPlaneProcess.StartAsync(Config(_a));
        _cacheRoot = Path.Combine(_cp.Root, "routers");
        var starts = new Task<RouterProcess>[RouterCount];
        for (var i = 0; i < RouterCount; i++)
        {
            // No --config: the first config comes from the control plane (/ready waits for it).
            starts[i] = RouterProcess.StartAsync(RouterArgs(i));
        }

        for (var i = 0; i < RouterCount; i++)
        {
            _routers[i] = await starts[i];
        }

        Assert.That(await _cp.WaitForRoutersAsync(r => AllApplied(r, 1), Converge), Is.True, "all routers acked version 1");
    }

    [OneTimeTearDown]
    public async Task StopFleet()
    {
        foreach (var router in _routers)
        {
            if (router is not null)
            {
                await router.DisposeAsync();
            }
        }

        _http.Dispose();
        await _cp.DisposeAsync();
        await _a.DisposeAsync();
        await _b.DisposeAsync();
    }

    [Test, Order(1)]
    public async Task Put_ReachesEveryRouter_WhichAcks_AndServesTheNewRoute_PropagationMeasured()
    {
        var perRouter = new List<double>();
        var perPut = new List<double>();
        for (var change = 0; change < PropagationChanges; change++)
        {
            var target = change % 2 == 0 ? _b : _a;
            var json = Config(target);
            var clock = Stopwatch.StartNew();
            var version = await _cp.PutValidConfigAsync(json);
            var served = new Task<double>[RouterCount];
            for (var i = 0; i < RouterCount; i++)
            {
                served[i] = FirstServedByAsync(_routers[i]!, target.Name, clock);
            }

            var times = await Task.WhenAll(served);
            perRouter.AddRange(times);
            perPut.Add(times.Max());
            Assert.That(await _cp.WaitForRoutersAsync(r => AllApplied(r, version), Converge), Is.True, $"every router acked version {version}");
        }

        var routers = await _cp.GetRoutersAsync();
        Assert.That(routers.Keys, Is.SupersetOf(NodeIds()));
        foreach (var node in NodeIds())
        {
            Assert.That(routers[node].GetProperty("connected").GetBoolean(), Is.True, node);
        }

        var report = PropagationReport(perRouter, perPut);
        await TestContext.Out.WriteLineAsync(report);
        WriteBenchResult("cp-propagation", report);
    }

    [Test, Order(2)]
    public async Task InvalidPut_Gets400WithItsErrors_AndNothingIsPushed()
    {
        var before = await CurrentVersionAsync();
        var appliedBefore = await RouterVersionsAsync();
        const string invalid = """
            { "routes": [ { "id": "r", "match": { "pathPrefix": "/" }, "cluster": "missing" } ],
              "clusters": [ { "id": "c", "destinations": [] } ] }
            """;

        using var response = await _cp.PutConfigAsync(invalid);
        var body = await response.Content.ReadAsStringAsync();

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), body);
        using (var doc = JsonDocument.Parse(body))
        {
            Assert.That(doc.RootElement.GetProperty("errors").GetArrayLength(), Is.GreaterThanOrEqualTo(1), body);
        }

        Assert.That(await CurrentVersionAsync(), Is.EqualTo(before), "the store did not take it");
        Assert.That(await RouterVersionsAsync(), Is.EqualTo(appliedBefore), "routers still run what they ran");

        // The next valid PUT is the very next version, and it is what every router applies next: nothing came between.
        var target = await CurrentTargetAsync() == "A" ? _b : _a;
        var next = await _cp.PutValidConfigAsync(Config(target));
        Assert.That(next, Is.EqualTo(before + 1));
        Assert.That(await _cp.WaitForRoutersAsync(r => AllApplied(r, next), Converge), Is.True);
        for (var i = 0; i < RouterCount; i++)
        {
            Assert.That(await UpstreamOfAsync(_routers[i]!), Is.EqualTo(target.Name));
        }
    }

    [Test, Order(3)]
    public async Task RouterWithAWrongToken_IsRefused_AndStaysDisconnected()
    {
        var badToken = Path.Combine(_cp.Root, "wrong.token");
        await File.WriteAllTextAsync(badToken, "not-the-router-token\n");
        var configFile = Path.Combine(_cp.Root, "bootstrap.json");
        await File.WriteAllTextAsync(configFile, Config(_a));

        await using var intruder = await RouterProcess.StartAsync(
            ["--control-plane", _cp.RouterUrl, "--token-file", badToken, "--node-id", "intruder", "--config", configFile]);

        string? lastError = null;
        var refused = await EventuallyAsync(async () =>
        {
            using var status = await AdminConfigAsync(intruder);
            var cp = status.RootElement.GetProperty("controlPlane");
            lastError = cp.GetProperty("lastError").GetString();
            return lastError is not null && lastError.Contains("401", StringComparison.Ordinal)
                && cp.GetProperty("state").GetString() != "Connected";
        });

        Assert.That(refused, Is.True, "lastError: " + lastError);
        Assert.That((await _cp.GetRoutersAsync()).Keys, Does.Not.Contain("intruder"));
        Assert.That(await UpstreamOfAsync(intruder), Is.EqualTo("A"), "it still routes on its own file config");
    }

    [Test, Order(4)]
    public async Task ControlPlaneKilledUnderLoad_RoutersServeWithoutAFailure_ARestartedRouterServesItsCache_AndTheFleetReconverges()
    {
        var version = await CurrentVersionAsync();
        var target = await CurrentTargetAsync() ?? throw new AssertionException("the fleet does not serve before the test");

        // 1. Load: four client loops over the three routers; the CP is SIGKILLed while they run.
        using var stop = new CancellationTokenSource();
        var loops = new Task<(long Ok, long Failed, string? FirstFailure)>[4];
        for (var i = 0; i < loops.Length; i++)
        {
            loops[i] = LoadLoopAsync(_routers[i % RouterCount]!, target, stop.Token);
        }

        await Task.Delay(300);
        _cp.Kill();
        var killedAt = Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromSeconds(2));
        await stop.CancelAsync();
        var results = await Task.WhenAll(loops);
        var ok = results.Sum(r => r.Ok);
        var failed = results.Sum(r => r.Failed);
        await TestContext.Out.WriteLineAsync($"CP killed under load: {ok} requests ok, {failed} failed ({killedAt.Elapsed.TotalSeconds:0.0} s after the kill)");
        Assert.That(failed, Is.Zero, results.FirstOrDefault(r => r.FirstFailure is not null).FirstFailure);
        Assert.That(ok, Is.GreaterThan(100), "the loops really ran");

        // 2. A router restarted while the CP is down boots from its last-known-good cache.
        await _routers[2]!.DisposeAsync();
        _routers[2] = null;
        var clock = Stopwatch.StartNew();
        var restarted = await RouterProcess.StartAsync(RouterArgs(2), waitReady: false);
        _routers[2] = restarted;
        var firstServed = await FirstServedByAsync(restarted, target, clock, TimeSpan.FromSeconds(10));
        await TestContext.Out.WriteLineAsync($"router restarted while the CP is down: first proxied 200 {firstServed:0} ms after Process.Start");
        using (var status = await AdminConfigAsync(restarted))
        {
            Assert.That(status.RootElement.GetProperty("source").GetString(), Is.EqualTo("cache"));
            Assert.That(status.RootElement.GetProperty("version").GetInt64(), Is.EqualTo(version));
            Assert.That(status.RootElement.GetProperty("controlPlane").GetProperty("state").GetString(), Is.Not.EqualTo("Connected"));
        }

        // Target: < 1 s from Process.Start (0.5-0.7 s measured on a quiet 2-core box, Debug build). That figure is mostly
        // .NET start-up, which a starved shared machine stretches past 1 s; the bound asserted here is what separates
        // "served from the cache at boot" from "waited for the control plane" (connect timeout 10 s, backoff up to 30 s).
        Assert.That(firstServed, Is.LessThan(3000), "served the cached config within seconds of Process.Start, without the CP");

        // 3. The CP comes back on the same data dir and port: every router reconnects (reporting the version it runs).
        await _cp.RestartAsync();
        Assert.That(await CurrentVersionAsync(), Is.EqualTo(version), "the store survived the kill");
        var reconnected = await _cp.WaitForRoutersAsync(
            r => NodeIds().All(n => r.TryGetValue(n, out var e) && e.GetProperty("connected").GetBoolean() && AppliedVersion(e) == version),
            TimeSpan.FromSeconds(40));
        Assert.That(reconnected, Is.True, "every router reconnected after the CP restart");

        // 4. ...and converges on a change made after the restart.
        var next = target == "A" ? _b : _a;
        var nextVersion = await _cp.PutValidConfigAsync(Config(next));
        Assert.That(await _cp.WaitForRoutersAsync(r => AllApplied(r, nextVersion), Converge), Is.True, "all acked the post-restart PUT");
        for (var i = 0; i < RouterCount; i++)
        {
            Assert.That(await UpstreamOfAsync(_routers[i]!), Is.EqualTo(next.Name), "router " + NodeId(i));
        }
    }

    private string Config(TestUpstream target)
    {
        // A fresh route and cluster id per document: every PUT is a new version with new routes.
        var n = Interlocked.Increment(ref _configSerial);
        return $$"""
            {
              "routes": [ { "id": "route-{{n}}", "match": { "pathPrefix": "/" }, "cluster": "c-{{n}}" } ],
              "clusters": [ { "id": "c-{{n}}", "destinations": [ { "address": "{{target.Address}}" } ] } ]
            }
            """;
    }

    private string[] RouterArgs(int index) =>
    [
        "--control-plane", _cp.RouterUrl, "--token-file", _cp.RouterTokenFile,
        "--cache-dir", Path.Combine(_cacheRoot, NodeId(index)), "--node-id", NodeId(index),
    ];

    private static string NodeId(int index) => "r" + (index + 1).ToString(CultureInfo.InvariantCulture);

    private static IEnumerable<string> NodeIds() => Enumerable.Range(0, RouterCount).Select(NodeId);

    private static long? AppliedVersion(JsonElement router) =>
        router.TryGetProperty("appliedVersion", out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null;

    private static bool AllApplied(Dictionary<string, JsonElement> routers, long version) =>
        NodeIds().All(n => routers.TryGetValue(n, out var e) && AppliedVersion(e) == version);

    private async Task<long> CurrentVersionAsync()
    {
        using var response = await _cp.Admin.GetAsync(new Uri("/api/config", UriKind.Relative));
        response.EnsureSuccessStatusCode();
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return doc.RootElement.GetProperty("version").GetInt64();
    }

    private async Task<string?> CurrentTargetAsync() => await UpstreamOfAsync(_routers[0]!);

    /// <summary>Each router's live version as its own /admin/config shows it.</summary>
    private async Task<long[]> RouterVersionsAsync()
    {
        var versions = new long[RouterCount];
        for (var i = 0; i < RouterCount; i++)
        {
            using var status = await AdminConfigAsync(_routers[i]!);
            versions[i] = status.RootElement.GetProperty("version").GetInt64();
        }

        return versions;
    }

    private async Task<JsonDocument> AdminConfigAsync(RouterProcess router) =>
        JsonDocument.Parse(await _http.GetStringAsync(new Uri($"http://{router.AdminEndPoint}/admin/config")));

    /// <summary>The upstream that served GET / through the router, or null when the request failed.</summary>
    private async Task<string?> UpstreamOfAsync(RouterProcess router)
    {
        try
        {
            using var response = await _http.GetAsync(new Uri($"http://{router.EndPoint}/"));
            return response.StatusCode == HttpStatusCode.OK && response.Headers.TryGetValues("X-Upstream", out var names)
                ? names.First()
                : null;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    private Task<double> FirstServedByAsync(RouterProcess router, string upstream, Stopwatch clock) =>
        FirstServedByAsync(router, upstream, clock, Converge);

    /// <summary>Requests GET / back to back until <paramref name="upstream"/> answers; milliseconds on <paramref name="clock"/>.</summary>
    private async Task<double> FirstServedByAsync(RouterProcess router, string upstream, Stopwatch clock, TimeSpan timeout)
    {
        while (clock.Elapsed < timeout)
        {
            if (await UpstreamOfAsync(router) == upstream)
            {
                return clock.Elapsed.TotalMilliseconds;
            }

            if (router.HasExited)
            {
                Assert.Fail("router exited:\n" + router.Output);
            }
        }

        Assert.Fail($"router never served from {upstream} within {timeout}:\n{router.Output}");
        return 0;
    }

    private static async Task<(long Ok, long Failed, string? FirstFailure)> LoadLoopAsync(RouterProcess router, string upstream, CancellationToken stop)
    {
        // Its own connection pool, like an independent client.
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var uri = new Uri($"http://{router.EndPoint}/load");
        long ok = 0, failed = 0;
        string? first = null;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                using var response = await client.GetAsync(uri, CancellationToken.None);
                var body = await response.Content.ReadAsStringAsync(CancellationToken.None);
                if (response.StatusCode == HttpStatusCode.OK && body == upstream + " GET /load")
                {
                    ok++;
                    continue;
                }

                first ??= $"{(int)response.StatusCode} {body}";
            }
            catch (HttpRequestException ex)
            {
                first ??= ex.Message;
            }

            failed++;
        }

        return (ok, failed, first);
    }

    private static async Task<bool> EventuallyAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + Converge;
        while (DateTime.UtcNow < deadline)
        {
            if (await condition())
            {
                return true;
            }

            await Task.Delay(20);
        }

        return await condition();
    }

    private static string PropagationReport(List<double> perRouter, List<double> perPut)
    {
        var cpu = "unknown";
        foreach (var line in File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo") : [])
        {
            if (line.StartsWith("model name", StringComparison.Ordinal))
            {
                cpu = line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
                break;
            }
        }

        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"# Control-plane propagation, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        report.AppendLine();
        report.AppendLine(CultureInfo.InvariantCulture, $"Machine: {Environment.ProcessorCount} cores (nproc), {cpu}, shared with other jobs.");
        report.AppendLine("Command: `dotnet build Router.Tests && ROUTER_BENCH_RESULTS=$PWD/bench-results dotnet test Router.Tests --no-build --filter FullyQualifiedName~ControlPlaneEndToEndTests`");
        report.AppendLine();
        report.AppendLine(CultureInfo.InvariantCulture, $"Setup: real `router-cp` process + {RouterCount} real `router` processes + 2 Kestrel upstreams, all on loopback, Debug build.");
        report.AppendLine(CultureInfo.InvariantCulture, $"{perPut.Count} sequential PUTs, each routing `/` to the other upstream under a new route and cluster id.");
        report.AppendLine("Time runs from just before `PUT /api/config` to the first response through a router that came from the newly routed upstream");
        report.AppendLine("(each router polled with back-to-back GETs, so the figure includes the PUT round trip, the store's atomic write, the push, validate, compile, swap, and one proxied request).");
        report.AppendLine();
        report.AppendLine("| measure | samples | p50 ms | p99 ms | max ms |");
        report.AppendLine("|---|---|---|---|---|");
        report.AppendLine(Row("per router (PUT -> that router serves the new route)", perRouter));
        report.AppendLine(Row("per PUT (PUT -> the last of the routers serves it)", perPut));
        return report.ToString();

        static string Row(string name, List<double> samples) => string.Create(
            CultureInfo.InvariantCulture,
            $"| {name} | {samples.Count} | {Percentile(samples, 0.50):0.0} | {Percentile(samples, 0.99):0.0} | {samples.Max():0.0} |");
    }

    /// <summary>Nearest-rank percentile.</summary>
    private static double Percentile(List<double> samples, double p)
    {
        var sorted = samples.Order().ToArray();
        var rank = (int)Math.Ceiling(p * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    /// <summary>Writes a result file when ROUTER_BENCH_RESULTS names a directory (tests never write into the tree by default).</summary>
    private static void WriteBenchResult(string name, string report)
    {
        var dir = Environment.GetEnvironmentVariable("ROUTER_BENCH_RESULTS");
        if (string.IsNullOrEmpty(dir))
        {
            return;
        }

        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, $"{name}-{DateTime.UtcNow:yyyy-MM-dd}.md"), report);
    }
}
