using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.EmbeddingTests.Support;
using Router.Net;

namespace Router.EmbeddingTests;

/// <summary>
/// An application misusing or stressing the embedding API: lifecycle out of order, applies racing each other or a
/// stop, ports taken, two servers in one process, many start/stop cycles. Public API only.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class EmbeddingAuditTests
{
    private TestUpstream _a = null!;
    private TestUpstream _b = null!;

    [SetUp]
    public void SetUp()
    {
        _a = new TestUpstream("hello from A");
        _b = new TestUpstream("hello from B");
    }

    [TearDown]
    public async Task TearDown()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
    }

    [Test]
    public async Task Lifecycle_StopBeforeStart_DisposeTwice_StartAfterDispose_BehaveAsDocumented()
    {
        var router = new RouterServer(RouterServerTests.LoopbackOptions());
        await router.StopAsync(TimeSpan.FromSeconds(1));
        Assert.ThrowsAsync<InvalidOperationException>(() => router.StartAsync());
        await router.DisposeAsync();
        await router.DisposeAsync();
        Assert.ThrowsAsync<InvalidOperationException>(() => router.StartAsync());
        Assert.That(router.State.IsRunning, Is.False);
    }

    [Test]
    public async Task StartAsync_WithACancelledToken_ThrowsAndLeavesTheServerStartable()
    {
        await using var router = new RouterServer(RouterServerTests.LoopbackOptions());
        router.Apply(Configs.RouteEverythingTo(_a.EndPoint));
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        Assert.CatchAsync<OperationCanceledException>(() => router.StartAsync(cancelled.Token));
        await router.StartAsync();

        Assert.That(await GetAsync(router.State.ListenEndPoints[0]), Is.EqualTo("hello from A"));
    }

    [Test]
    public async Task DisposeAsync_WithARequestInFlight_DrainsItWithTheOptionsTimeout()
    {
        var router = new RouterServer(RouterServerTests.LoopbackOptions());
        router.Apply(Configs.RouteEverythingTo(_a.EndPoint));
        await router.StartAsync();
        _a.Hold = true;
        var received = _a.RequestReceived;
        var inFlight = GetAsync(router.State.ListenEndPoints[0]);
        await received;

        var disposing = router.DisposeAsync().AsTask();
        _a.Release();

        Assert.That(await inFlight, Is.EqualTo("hello from A"));
        await disposing;
    }

    [Test]
    public async Task Listen_OnIPv6Loopback_WithPortZero_ReportsTheBoundPortAndServes()
    {
        if (!Socket.OSSupportsIPv6)
        {
            Assert.Ignore("no IPv6");
        }

        var options = new RouterServerOptions { Listen = { new IPEndPoint(IPAddress.IPv6Loopback, 0) } };
        await using var router = new RouterServer(options);
        router.Apply(Configs.RouteEverythingTo(_a.EndPoint));
        await router.StartAsync();

        var endPoint = router.State.ListenEndPoints[0];
        Assert.That(endPoint.Port, Is.Not.Zero);
        Assert.That(await GetAsync(endPoint), Is.EqualTo("hello from A"));
    }

    [Test]
    public async Task StartAsync_OnAPortInUse_ThrowsIOExceptionNamingThePort_AndReleasesTheAdminPort()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var takenEndPoint = (IPEndPoint)taken.LocalEndpoint;

        // Admin on port 0, not on a port picked free beforehand: a port let go before the router binds it can be
        // taken by any other socket meanwhile. The admin listener binds before the proxy listeners and keeps its
        // address in State after the failed start.
        var options = new RouterServerOptions { Listen = { takenEndPoint }, Admin = new IPEndPoint(IPAddress.Loopback, 0) }
            .AddSource(new InMemoryConfigSource(Configs.RouteEverythingTo(_a.EndPoint)));
        await using var router = new RouterServer(options);

        var ex = Assert.ThrowsAsync<IOException>(() => router.StartAsync());

        Assert.That(ex!.Message, Does.Contain(takenEndPoint.ToString()));
        Assert.That(router.State.IsRunning, Is.False);
        var adminEndPoint = router.State.AdminEndPoint;
        Assert.That(adminEndPoint, Is.Not.Null, "the admin listener was bound before the proxy listener failed");
        Assert.That(adminEndPoint!.Port, Is.Not.Zero);
        using var admin = new TcpListener(adminEndPoint);
        Assert.DoesNotThrow(() => admin.Start(), "the admin port is free once StartAsync has thrown");
    }

    [Test]
    public async Task Apply_AfterStop_WithAHealthCheckedCluster_IsAcceptedWithoutThrowing()
    {
        var router = new RouterServer(RouterServerTests.LoopbackOptions());
        router.Apply(Configs.RouteEverythingTo(_a.EndPoint));
        await router.StartAsync();
        await router.DisposeAsync();

        var result = router.Apply(WithHealthCheck(Configs.RouteEverythingTo(_b.EndPoint)));

        Assert.That(result.Applied, Is.True, result.ToString());
    }

    [Test]
    public async Task ConcurrentApplies_TheLiveConfigsGlobalLimitIsTheOneEnforced()
    {
        // Thread A's config (global limit 1) is swapped in, then A is held in the "is live" log line while thread B
        // applies a config without a limit. Whatever order they finish in, the live config is B's, and B's (absent)
        // limit must be the one enforced.
        var gate = new HoldingLoggerFactory("Config generation 2 ");
        var options = RouterServerTests.LoopbackOptions();
        options.LoggerFactory = gate;
        await using var router = new RouterServer(options);
        router.Apply(Configs.RouteEverythingTo(_a.EndPoint));
        await router.StartAsync();

        var limited = Configs.RouteEverythingTo(_a.EndPoint) with { MaxConcurrentRequests = 1 };
        var unlimited = Configs.RouteEverythingTo(_a.EndPoint) with { MaxConcurrentRequests = 1000 };
        var first = Task.Run(() => router.Apply(limited));
        await gate.Held.WaitAsync(TimeSpan.FromSeconds(10));
        var second = Task.Run(() => router.Apply(unlimited));

        // Best effort, not a condition: give B the time to reach the applier while A is held. Either order must end
        // with B's config and limits live, so a slow B only makes this run a weaker test, never a failing one.
        await Task.WhenAny(second, Task.Delay(500));
        gate.Release();
        await Task.WhenAll(first, second);

        Assert.That(router.State.Generation, Is.EqualTo(3));
        Assert.That(router.State.Hash, Is.EqualTo(ConfigLoader.Validate(unlimited).Hash), "the last swapped config is live");
        _a.Hold = true;
        var received = _a.RequestReceived;
        var one = GetStatusAsync(router.State.ListenEndPoints[0]);
        await received;
        var twoReceived = _a.RequestReceived;
        var two = GetStatusAsync(router.State.ListenEndPoints[0]);

        // Shed at once (a global limit of 1 in force) or at the upstream beside the first: no clock decides which.
        await Task.WhenAny(two, twoReceived).WaitAsync(TimeSpan.FromSeconds(20));
        _a.Release();
        Assert.That(await one, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await two, Is.EqualTo(HttpStatusCode.OK), "the live config has no global limit of 1");
    }

    [Test]
    public async Task TwoServers_InOneProcess_EachAdminShowsOnlyItsOwnMetrics()
    {
        var optionsOne = RouterServerTests.LoopbackOptions();
        optionsOne.Admin = new IPEndPoint(IPAddress.Loopback, 0);
        var optionsTwo = RouterServerTests.LoopbackOptions();
        optionsTwo.Admin = new IPEndPoint(IPAddress.Loopback, 0);
        await using var one = new RouterServer(optionsOne);
        await using var two = new RouterServer(optionsTwo);
        one.Apply(Configs.RouteEverythingTo(_a.EndPoint));
        one.Apply(Configs.RouteEverythingTo(_b.EndPoint));
        two.Apply(Configs.RouteEverythingTo(_a.EndPoint));
        await one.StartAsync();
        await two.StartAsync();

        using var http = new HttpClient();
        var metrics = await http.GetStringAsync(new Uri($"http://{one.State.AdminEndPoint}/metrics"));

        var generation = metrics.Split('\n').Where(l => l.StartsWith("router_config_generation ", StringComparison.Ordinal)).ToList();
        Assert.That(generation, Has.Count.EqualTo(1), metrics);
        Assert.That(generation[0], Is.EqualTo("router_config_generation 2"), metrics);
    }

    [Test]
    public void Server_DisposedWithoutEverStarting_IsNotKeptAlive()
    {
        var weak = CreateApplyAndDispose(start: false);

        Assert.That(IsCollected(weak), Is.True, "a disposed server that never started is released");
    }

    [Test]
    public void Server_StartedAndStopped_IsNotKeptAlive()
    {
        var weak = CreateApplyAndDispose(start: true);

        Assert.That(IsCollected(weak), Is.True, "a disposed server is released");
    }

    [Test]
    public async Task ManyStartStopCycles_ReleaseDescriptorsAndThreads()
    {
        await Cycle(3); // warm up: thread pool, epoll loops, HttpClient
        int fds = OpenDescriptors();
        int threads = OwnThreads();
        int workers = ThreadPool.ThreadCount;

        await Cycle(30);

        int fdsAfter = OpenDescriptors();
        int threadsAfter = OwnThreads();
        int workersAfter = ThreadPool.ThreadCount;
        TestContext.Out.WriteLine($"descriptors {fds} -> {fdsAfter}, threads {threads} -> {threadsAfter}, thread-pool workers {workers} -> {workersAfter}");
        Assert.That(fdsAfter, Is.LessThanOrEqualTo(fds + 5));
        Assert.That(threadsAfter, Is.LessThanOrEqualTo(threads + 5));

        async Task Cycle(int times)
        {
            for (int i = 0; i < times; i++)
            {
                var options = RouterServerTests.LoopbackOptions();
                options.Admin = new IPEndPoint(IPAddress.Loopback, 0);
                await using var router = new RouterServer(options);
                router.Apply(WithHealthCheck(Configs.RouteEverythingTo(_a.EndPoint)));
                await router.StartAsync();
                Assert.That(await GetAsync(router.State.ListenEndPoints[0]), Is.EqualTo("hello from A"));
                await router.StopAsync(TimeSpan.FromSeconds(5));
            }
        }
    }

    [TestCase("http://127.0.0.1:1/ws/router")]
    [TestCase("/ws/router")]
    public void ControlPlaneSource_WithAUriThatIsNotWebSocket_IsRejectedWhenCreated(string uri)
    {
        // Else every session fails ("only ws:// or wss://") and the source retries for ever.
        Assert.Throws<ArgumentException>(() => _ = new ControlPlaneConfigSource(new Uri(uri, UriKind.RelativeOrAbsolute), "token"));
    }

    private static RouterConfig WithHealthCheck(RouterConfig config) => config with
    {
        Clusters = [config.Clusters[0] with { HealthCheck = new HealthCheckConfig { Path = "/healthz", IntervalMs = 100, TimeoutMs = 100 } }],
    };

    [MethodImpl(MethodImplOptions.NoInlining)]
    private WeakReference CreateApplyAndDispose(bool start)
    {
        var options = RouterServerTests.LoopbackOptions();
        options.Admin = new IPEndPoint(IPAddress.Loopback, 0);
        var router = new RouterServer(options);
        router.Apply(Configs.RouteEverythingTo(_a.EndPoint));
        if (start)
        {
            router.StartAsync().GetAwaiter().GetResult();
            GetAsync(router.State.ListenEndPoints[0]).GetAwaiter().GetResult();
        }

        router.DisposeAsync().AsTask().GetAwaiter().GetResult();
        return new WeakReference(router);
    }

    private static bool IsCollected(WeakReference weak)
    {
        for (int i = 0; i < 20 && weak.IsAlive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Thread.Sleep(50);
        }

        return !weak.IsAlive;
    }

    private static int OpenDescriptors() => Directory.GetFiles("/proc/self/fd").Length;

    /// <summary>
    /// The process's threads less the thread pool's: the pool adds and retires workers on its own schedule (hill
    /// climbing, starvation), several within a few loaded seconds, so counting them would make the check flaky; a
    /// thread a router starts and never ends (an event loop, a dedicated reader) is counted.
    /// </summary>
    private static int OwnThreads() => Process.GetCurrentProcess().Threads.Count - ThreadPool.ThreadCount;

    private static async Task<string> GetAsync(IPEndPoint endPoint)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
        return await http.GetStringAsync(new Uri($"http://{endPoint}/"));
    }

    private static async Task<HttpStatusCode> GetStatusAsync(IPEndPoint endPoint)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
        using var response = await http.GetAsync(new Uri($"http://{endPoint}/"));
        return response.StatusCode;
    }

    /// <summary>A logger that holds the thread logging a message containing a given text until released.</summary>
    private sealed class HoldingLoggerFactory(string holdOn) : ILoggerFactory, ILogger
    {
        private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly ManualResetEventSlim _release = new();

        public Task Held => _held.Task;

        public void Release() => _release.Set();

        public ILogger CreateLogger(string categoryName) => this;

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public void Dispose() => _release.Dispose();

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (formatter(state, exception).Contains(holdOn, StringComparison.Ordinal) && _held.TrySetResult())
            {
                _release.Wait(TimeSpan.FromSeconds(20));
            }
        }
    }
}
