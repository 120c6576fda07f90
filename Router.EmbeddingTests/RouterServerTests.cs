using System.Net;
using System.Text;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Core.Routing;
using Router.EmbeddingTests.Support;
using Router.Net;

namespace Router.EmbeddingTests;

/// <summary>An application hosting the router through <see cref="RouterServer"/>, the public API only.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class RouterServerTests
{
    private static readonly string[] RejectedPaths = ["$.routes[0].cluster", "$.clusters[0].destinations"];

    private TestUpstream _a = null!;
    private TestUpstream _b = null!;
    private HttpClient? _http;

    [SetUp]
    public void SetUp()
    {
        _a = new TestUpstream("hello from A");
        _b = new TestUpstream("hello from B");
    }

    [TearDown]
    public async Task TearDown()
    {
        _http?.Dispose();
        await _a.DisposeAsync();
        await _b.DisposeAsync();
    }

    [Test]
    public async Task StartAsync_WithAConfigApplied_ProxiesRequestsToTheUpstream()
    {
        await using var router = new RouterServer(LoopbackOptions());
        Assert.That(router.Apply(Configs.RouteEverythingTo(_a.EndPoint)).Applied, Is.True);

        await router.StartAsync();

        Assert.That(await Client(router).GetStringAsync("/anything"), Is.EqualTo("hello from A"));
        var state = router.State;
        Assert.Multiple(() =>
        {
            Assert.That(state.IsRunning, Is.True);
            Assert.That(state.ListenEndPoints, Has.Count.EqualTo(1));
            Assert.That(state.ListenEndPoints[0].Port, Is.Not.Zero);
            Assert.That(state.Generation, Is.EqualTo(1));
            Assert.That(state.Source, Is.EqualTo("api"));
        });
    }

    [Test]
    public async Task State_BeforeStart_ShowsNothingRunning()
    {
        await using var router = new RouterServer(LoopbackOptions());

        var state = router.State;

        Assert.Multiple(() =>
        {
            Assert.That(state.IsRunning, Is.False);
            Assert.That(state.Config, Is.Null);
            Assert.That(state.Generation, Is.Zero);
            Assert.That(state.Hash, Is.Empty);
            Assert.That(state.ListenEndPoints, Is.Empty);
            Assert.That(state.LastRejection, Is.Null);
        });
    }

    [Test]
    public async Task StartAsync_Twice_Throws()
    {
        await using var router = new RouterServer(LoopbackOptions());
        await router.StartAsync();

        Assert.ThrowsAsync<InvalidOperationException>(() => router.StartAsync());
    }

    [Test]
    public async Task Apply_ANewConfig_GoesLiveForTheNextRequestWithTheNextGeneration()
    {
        await using var router = new RouterServer(LoopbackOptions());
        router.Apply(Configs.RouteEverythingTo(_a.EndPoint));
        await router.StartAsync();
        var http = Client(router);
        Assert.That(await http.GetStringAsync("/"), Is.EqualTo("hello from A"));

        var result = router.Apply(Configs.RouteEverythingTo(_b.EndPoint));

        Assert.Multiple(() =>
        {
            Assert.That(result.Applied, Is.True);
            Assert.That(result.Errors, Is.Empty);
            Assert.That(result.Live!.Generation, Is.EqualTo(2));
            Assert.That(router.State.Hash, Is.EqualTo(result.Hash));
            Assert.That(router.State.AppliedAt, Is.EqualTo(result.Live.AppliedAt));
        });
        Assert.That(await http.GetStringAsync("/"), Is.EqualTo("hello from B"));
    }

    [Test]
    public async Task Apply_Json_GoesThroughTheSamePathAsAConfigObject()
    {
        await using var router = new RouterServer(LoopbackOptions());
        await router.StartAsync();

        var result = router.Apply(Encoding.UTF8.GetBytes(Configs.Json(_b.EndPoint)));

        Assert.That(result.Applied, Is.True, result.ToString());
        Assert.That(result.Hash, Is.EqualTo(ConfigLoader.Validate(Configs.RouteEverythingTo(_b.EndPoint)).Hash));
        Assert.That(await Client(router).GetStringAsync("/"), Is.EqualTo("hello from B"));
    }

    [Test]
    public async Task Apply_AnInvalidConfig_ReturnsEveryErrorAndKeepsTheLiveConfigServing()
    {
        await using var router = new RouterServer(LoopbackOptions());
        router.Apply(Configs.RouteEverythingTo(_a.EndPoint));
        await router.StartAsync();

        var result = router.Apply(new RouterConfig
        {
            Routes = [new RouteConfig { Id = "broken", Match = new RouteMatch { PathPrefix = "/" }, Cluster = "nowhere" }],
            Clusters = [new ClusterConfig { Id = "empty" }],
        });

        Assert.Multiple(() =>
        {
            Assert.That(result.Applied, Is.False);
            Assert.That(result.Errors.Select(e => e.Path), Is.EquivalentTo(RejectedPaths));
            Assert.That(result.Live!.Generation, Is.EqualTo(1), "the live config is unchanged");
            Assert.That(router.State.LastRejection!.Errors, Is.EqualTo(result.Errors));
            Assert.That(router.State.LastRejection!.Source, Is.EqualTo("api"));
        });
        Assert.That(await Client(router).GetStringAsync("/"), Is.EqualTo("hello from A"));
    }

    [Test]
    public async Task Apply_InvalidJson_ReturnsEveryErrorWithItsPath()
    {
        await using var router = new RouterServer(LoopbackOptions());

        var result = router.Apply("""{ "routes": [ { "id": "r", "match": { "pathPrefix": "/" }, "cluster": "missing", "colour": "red" } ], "clusters": [] }"""u8.ToArray());

        Assert.That(result.Applied, Is.False);
        Assert.That(result.Errors.Select(e => e.Path), Does.Contain("$.routes[0].colour").And.Contain("$.routes[0].cluster"));
        Assert.That(result.Live, Is.Null);
    }

    [Test]
    public async Task StopAsync_WithARequestInFlight_LetsItComplete()
    {
        await using var router = new RouterServer(LoopbackOptions());
        router.Apply(Configs.RouteEverythingTo(_a.EndPoint));
        await router.StartAsync();
        _a.Hold = true;
        var received = _a.RequestReceived;
        var inFlight = Client(router).GetAsync("/slow");
        await received;

        var stopping = router.StopAsync(TimeSpan.FromSeconds(20));
        Assert.That(router.State.IsRunning, Is.False);
        _a.Release();

        using var response = await inFlight;
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("hello from A"));
        await stopping;
        Assert.That(router.State.OpenConnections, Is.Zero);
    }

    [Test]
    public async Task StopAsync_Cancelled_ClosesInFlightConnectionsAtOnce()
    {
        await using var router = new RouterServer(LoopbackOptions());
        router.Apply(Configs.RouteEverythingTo(_a.EndPoint));
        await router.StartAsync();
        _a.Hold = true;
        var received = _a.RequestReceived;
        var inFlight = Client(router).GetAsync("/slow");
        await received;
        using var cut = new CancellationTokenSource();

        var stopping = router.StopAsync(TimeSpan.FromMinutes(5), cut.Token);
        await cut.CancelAsync();

        await stopping.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.ThrowsAsync<HttpRequestException>(() => inFlight);
    }

    [Test]
    public async Task StopAsync_CalledTwice_ReturnsTheSameStop()
    {
        var router = new RouterServer(LoopbackOptions());
        await router.StartAsync();

        var first = router.StopAsync(TimeSpan.FromSeconds(1));
        var second = router.StopAsync(TimeSpan.FromSeconds(1));

        Assert.That(second, Is.SameAs(first));
        await first;
        await router.DisposeAsync();
    }

    [Test]
    public async Task Admin_WhenConfigured_AnswersReadyOnceAConfigIsLive()
    {
        var options = LoopbackOptions();
        options.Admin = new IPEndPoint(IPAddress.Loopback, 0);
        await using var router = new RouterServer(options);
        router.Apply(Configs.RouteEverythingTo(_a.EndPoint));
        await router.StartAsync();
        using var admin = new HttpClient { BaseAddress = new Uri($"http://{router.State.AdminEndPoint}") };

        using var ready = await admin.GetAsync("/ready");

        Assert.That(ready.StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task ConfigApplied_IsRaisedWithTheLiveConfigInfo()
    {
        await using var router = new RouterServer(LoopbackOptions());
        var raised = new List<SnapshotInfo>();
        router.ConfigApplied += (_, info) => raised.Add(info);

        router.Apply(Configs.RouteEverythingTo(_a.EndPoint));
        router.Apply(Configs.RouteEverythingTo(_a.EndPoint)); // same content: nothing to swap
        router.Apply(Configs.RouteEverythingTo(_b.EndPoint));

        Assert.That(raised.Select(i => i.Generation), Is.EqualTo(new long[] { 1, 2 }));
    }

    [Test]
    public void Limits_WithANonPositiveValue_AreRejectedWhenSet()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new RouterLimits { MaxHeaderCount = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new RouterLimits { HeaderTimeout = TimeSpan.Zero });
    }

    [Test]
    public async Task Limits_AreEnforcedOnClientRequests()
    {
        var options = LoopbackOptions();
        options.Limits = RouterLimits.Default with { MaxRequestLineBytes = 64 };
        await using var router = new RouterServer(options);
        router.Apply(Configs.RouteEverythingTo(_a.EndPoint));
        await router.StartAsync();

        using var response = await Client(router).GetAsync("/" + new string('a', 200));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.RequestUriTooLong));
    }

    internal static RouterServerOptions LoopbackOptions() => new() { Listen = { new IPEndPoint(IPAddress.Loopback, 0) } };

    private HttpClient Client(RouterServer router)
    {
        _http?.Dispose();
        _http = new HttpClient { BaseAddress = new Uri($"http://{router.State.ListenEndPoints[0]}"), Timeout = TimeSpan.FromSeconds(20) };
        return _http;
    }
}
