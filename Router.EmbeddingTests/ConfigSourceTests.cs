using System.Net;
using System.Threading.Channels;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Core.Routing;
using Router.EmbeddingTests.Support;
using Router.Net;

namespace Router.EmbeddingTests;

/// <summary>Config sources feeding an embedded router: the built-in ones and one an application writes.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class ConfigSourceTests
{
    private TestUpstream _a = null!;
    private TestUpstream _b = null!;
    private string _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _a = new TestUpstream("hello from A");
        _b = new TestUpstream("hello from B");
        _dir = Directory.CreateTempSubdirectory("router-embed-").FullName;
    }

    [TearDown]
    public async Task TearDown()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Test]
    public async Task InMemorySource_InitialConfig_IsLiveWhenStartReturns()
    {
        var source = new InMemoryConfigSource(Configs.RouteEverythingTo(_a.EndPoint));
        await using var router = new RouterServer(RouterServerTests.LoopbackOptions().AddSource(source));

        await router.StartAsync();

        Assert.That(router.State.Source, Is.EqualTo("memory"));
        Assert.That(await GetAsync(router), Is.EqualTo("hello from A"));
    }

    [Test]
    public async Task InMemorySource_Update_SwapsTheLiveConfigBeforeItReturns()
    {
        var source = new InMemoryConfigSource(Configs.RouteEverythingTo(_a.EndPoint), name: "app");
        await using var router = new RouterServer(RouterServerTests.LoopbackOptions().AddSource(source));
        await router.StartAsync();

        var result = source.Update(Configs.RouteEverythingTo(_b.EndPoint));

        Assert.That(result.Applied, Is.True);
        Assert.That(router.State.Source, Is.EqualTo("app"));
        Assert.That(await GetAsync(router), Is.EqualTo("hello from B"));
    }

    [Test]
    public async Task InMemorySource_InvalidUpdate_ReturnsEveryErrorAndKeepsServing()
    {
        var source = new InMemoryConfigSource(Configs.RouteEverythingTo(_a.EndPoint));
        await using var router = new RouterServer(RouterServerTests.LoopbackOptions().AddSource(source));
        await router.StartAsync();

        var result = source.Update(new RouterConfig { Routes = [new RouteConfig { Id = "r", Match = new RouteMatch { PathPrefix = "/" }, Cluster = "gone" }] });

        Assert.That(result.Applied, Is.False);
        Assert.That(result.Errors.Select(e => e.Path), Does.Contain("$.routes[0].cluster"));
        Assert.That(await GetAsync(router), Is.EqualTo("hello from A"));
    }

    [Test]
    public async Task InMemorySource_UpdateBeforeStart_IsValidatedAndAppliedAtStart()
    {
        var source = new InMemoryConfigSource();
        var early = source.Update(Configs.RouteEverythingTo(_b.EndPoint));
        await using var router = new RouterServer(RouterServerTests.LoopbackOptions().AddSource(source));

        await router.StartAsync();

        Assert.That(early.Applied, Is.False);
        Assert.That(early.Errors, Is.Empty);
        Assert.That(await GetAsync(router), Is.EqualTo("hello from B"));
    }

    [Test]
    public async Task FileSource_FileRewritten_ReloadsWithoutARestart()
    {
        var path = Path.Combine(_dir, "router.json");
        await File.WriteAllTextAsync(path, Configs.Json(_a.EndPoint));
        await using var router = new RouterServer(RouterServerTests.LoopbackOptions().AddSource(new FileConfigSource(path)));
        await router.StartAsync();
        Assert.That(router.State.Source, Is.EqualTo("file:" + path));
        Assert.That(await GetAsync(router), Is.EqualTo("hello from A"));
        var reloaded = NextApplied(router);

        await File.WriteAllTextAsync(path, Configs.Json(_b.EndPoint));

        Assert.That((await reloaded).Generation, Is.EqualTo(2));
        Assert.That(await GetAsync(router), Is.EqualTo("hello from B"));
    }

    [Test]
    public async Task FileSource_MissingFile_IsReportedAndTheRouterStillStarts()
    {
        var path = Path.Combine(_dir, "absent.json");
        await using var router = new RouterServer(RouterServerTests.LoopbackOptions().AddSource(new FileConfigSource(path)));

        await router.StartAsync();

        var state = router.State;
        Assert.That(state.IsRunning, Is.True);
        Assert.That(state.Config, Is.Null);
        Assert.That(state.LastRejection!.Source, Is.EqualTo("file:" + path));
    }

    [Test]
    public async Task CustomSource_WrittenByTheApplication_FeedsTheRouter()
    {
        var source = new ChannelConfigSource();
        await using var router = new RouterServer(RouterServerTests.LoopbackOptions().AddSource(source));
        await router.StartAsync();
        var applied = NextApplied(router);

        await source.Configs.Writer.WriteAsync(Configs.RouteEverythingTo(_b.EndPoint));

        var info = await applied;
        Assert.That(info.Source, Is.EqualTo("discovery"));
        Assert.That(info.Version, Is.EqualTo(1));
        Assert.That(router.State.Version, Is.EqualTo(1));
        Assert.That(await GetAsync(router), Is.EqualTo("hello from B"));
    }

    [Test]
    public async Task CustomSource_Failing_IsLoggedAndTheRouterKeepsServing()
    {
        var options = RouterServerTests.LoopbackOptions()
            .AddSource(new InMemoryConfigSource(Configs.RouteEverythingTo(_a.EndPoint)))
            .AddSource(new ThrowingConfigSource());
        await using var router = new RouterServer(options);

        await router.StartAsync();

        Assert.That(await GetAsync(router), Is.EqualTo("hello from A"));
        await router.StopAsync(TimeSpan.FromSeconds(1));
    }

    [Test]
    public async Task ControlPlaneSource_WithACachedConfig_RoutesBeforeTheControlPlaneAnswers()
    {
        // Seed the cache the way a previous run would have left it: run a control-plane source whose control plane
        // is unreachable but whose cache directory holds a config.
        var cacheDir = Path.Combine(_dir, "cache");
        Directory.CreateDirectory(cacheDir);
        await File.WriteAllTextAsync(Path.Combine(cacheDir, "last-known-good.json"), Configs.Json(_a.EndPoint));
        var source = new ControlPlaneConfigSource(new Uri("ws://127.0.0.1:1/ws/router"), "token") { CacheDirectory = cacheDir, NodeId = "embedded" };
        await using var router = new RouterServer(RouterServerTests.LoopbackOptions().AddSource(source));

        await router.StartAsync();

        Assert.That(router.State.Source, Is.EqualTo("cache"));
        Assert.That(source.IsConnected, Is.False);
        Assert.That(await GetAsync(router), Is.EqualTo("hello from A"));
    }

    [Test]
    public async Task FileSource_FeedingAnApplicationsOwnTarget_AppliesThroughIt()
    {
        var path = Path.Combine(_dir, "router.json");
        await File.WriteAllTextAsync(path, Configs.Json(_a.EndPoint));
        await using var router = new RouterServer(RouterServerTests.LoopbackOptions());
        await router.StartAsync();
        var audited = new AuditingTarget(router);
        using var stop = new CancellationTokenSource();

        var running = new FileConfigSource(path).RunAsync(audited, stop.Token);

        Assert.That(audited.Applied, Is.EqualTo(new[] { "file:" + path }));
        Assert.That(await GetAsync(router), Is.EqualTo("hello from A"));
        await stop.CancelAsync();
        Assert.That(async () => await running, Throws.InstanceOf<OperationCanceledException>());
    }

    private static async Task<string> GetAsync(RouterServer router)
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://{router.State.ListenEndPoints[0]}"), Timeout = TimeSpan.FromSeconds(20) };
        return await http.GetStringAsync("/");
    }

    private static Task<SnapshotInfo> NextApplied(RouterServer router)
    {
        var next = new TaskCompletionSource<SnapshotInfo>(TaskCreationOptions.RunContinuationsAsynchronously);
        router.ConfigApplied += (_, info) => next.TrySetResult(info);
        return next.Task;
    }

    /// <summary>What an application might write for service discovery: configs arrive on a channel, each with a version.</summary>
    private sealed class ChannelConfigSource : ConfigSource
    {
        public Channel<RouterConfig> Configs { get; } = Channel.CreateUnbounded<RouterConfig>();

        public override async Task RunAsync(IConfigTarget target, CancellationToken cancellationToken)
        {
            long version = 0;
            await foreach (var config in Configs.Reader.ReadAllAsync(cancellationToken))
            {
                target.Apply(config, "discovery", ++version);
            }
        }
    }

    /// <summary>An application's own target: records every apply, then hands it to the router.</summary>
    private sealed class AuditingTarget(RouterServer router) : IConfigTarget
    {
        public List<string> Applied { get; } = [];

        public RouterState State => router.State;

        public ApplyResult Apply(RouterConfig config, string source, long? version)
        {
            Applied.Add(source);
            return router.Apply(config, source, version);
        }

        public ApplyResult Apply(ReadOnlyMemory<byte> json, string source, long? version)
        {
            Applied.Add(source);
            return router.Apply(json, source, version);
        }

        public void ReportFailure(string source, IReadOnlyList<ConfigError> errors) => router.ReportFailure(source, errors);
    }

    private sealed class ThrowingConfigSource : ConfigSource
    {
        public override async Task RunAsync(IConfigTarget target, CancellationToken cancellationToken)
        {
            await Task.Yield();
            throw new InvalidOperationException("the database is down");
        }
    }
}
