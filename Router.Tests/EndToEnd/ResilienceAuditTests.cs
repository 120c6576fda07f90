using System.Diagnostics;
using System.Net.Sockets;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Core.Resilience;
using Router.Core.Routing;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>
/// Audit of the M4 resilience gates as an operator relies on them: a real router in-process, real upstreams on
/// loopback (scripted ones for faults on demand), raw clients, and the gates' counters checked afterwards.
/// </summary>
public sealed class ResilienceAuditTests
{
    /// <summary>
    /// An upstream that holds every request until <see cref="Release"/>: each arrival is counted and signalled, then
    /// answered <c>200 ok</c> with <c>Connection: close</c>.
    /// </summary>
    private sealed class HoldingUpstream : IAsyncDisposable
    {
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly SemaphoreSlim _arrived = new(0);
        private int _requests;

        public HoldingUpstream()
        {
            Upstream = new ScriptedUpstream(async socket =>
            {
                await ScriptedUpstream.ReadHeadAsync(socket);
                Interlocked.Increment(ref _requests);
                _arrived.Release();
                await _release.Task;
                await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            });
        }

        public ScriptedUpstream Upstream { get; }

        public string Address => Upstream.Address;

        public int Requests => Volatile.Read(ref _requests);

        public async Task WaitForArrivalAsync()
        {
            Assert.That(await _arrived.WaitAsync(TimeSpan.FromSeconds(10)), Is.True, "the request reached the upstream");
        }

        public void Release() => _release.TrySetResult();

        public async ValueTask DisposeAsync()
        {
            Release();
            await Upstream.DisposeAsync();
        }
    }

    private static ClusterConfig ClusterOf(string id, params string[] addresses) => new()
    {
        Id = id,
        Destinations = addresses.Select(a => new DestinationConfig { Address = a }).ToArray(),
    };

    private static async Task<RawResponse> GetAsync(RouterFixture router, string path = "/x")
    {
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync($"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        return await client.ReadResponseAsync();
    }

    /// <summary>A GET that should be answered at once (shed or served): status 0 when no answer came within 5 s.</summary>
    private static async Task<RawResponse> GetPromptlyAsync(RouterFixture router, string path = "/x")
    {
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync($"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            return await client.ReadResponseAsync(cancellationToken: timeout.Token);
        }
        catch (OperationCanceledException)
        {
            return new RawResponse(0, "", [], []);
        }
    }

    /// <summary>Every concurrency gate of the live snapshot (and the global one) back at zero.</summary>
    private static async Task AssertGatesDrainedAsync(RouterFixture router)
    {
        var snapshot = router.Host.Table.Current!;
        bool Drained()
        {
            if (router.Host.Runtime.GlobalLimit.Current != 0)
            {
                return false;
            }

            foreach (var route in snapshot.Routes)
            {
                if (route.Limit.Current != 0)
                {
                    return false;
                }
            }

            foreach (var cluster in snapshot.Clusters)
            {
                if (cluster.Limit.Current != 0 || Volatile.Read(ref cluster.InFlight) != 0 || (cluster.Retries?.InFlightRetries ?? 0) != 0)
                {
                    return false;
                }

                foreach (var destination in cluster.Destinations)
                {
                    if (Volatile.Read(ref destination.InFlight) != 0)
                    {
                        return false;
                    }
                }
            }

            return true;
        }

        Assert.That(await Eventually.TrueAsync(Drained, TimeSpan.FromSeconds(10)), Is.True, "every concurrency gate and in-flight count back to zero");
    }

    // ---- Connect timeout ----

    [Test]
    public async Task ConnectTimeout_ADestinationThatNeverAnswers_Is504AfterTheClustersConnectTimeout()
    {
        using var unanswered = await UnansweredListener.StartAsync();
        var config = new RouterConfig
        {
            Routes = [Route("r", "c")],
            Clusters = [ClusterOf("c", unanswered.Address) with { ConnectTimeoutMs = 300 }],
        };
        await using var router = RouterFixture.Start(config);

        var watch = Stopwatch.StartNew();
        var response = await GetAsync(router);
        var elapsed = watch.Elapsed;

        TestContext.Out.WriteLine($"answered after {elapsed.TotalMilliseconds:F0} ms");
        Assert.That(response.StatusCode, Is.EqualTo(504));
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(300)), "not before the connect timeout");
        Assert.That(elapsed, Is.LessThan(TimeSpan.FromSeconds(3)), "at the connect timeout, not at the kernel's SYN retries");
        var samples = PrometheusText.Parse(await router.AdminGetAsync("/metrics"));
        Assert.That(samples.Value("router_upstream_failures_total", ("cluster", "c"), ("reason", "connect_timeout")), Is.EqualTo(1));
        var destination = router.Host.Table.Current!.Clusters[0].Destinations[0];
        Assert.That(Router.Net.Forwarding.UpstreamPool.For(destination).OpenConnections, Is.Zero, "the timed-out connect does not count as open");
        await AssertGatesDrainedAsync(router);
    }

    [Test]
    public async Task ConnectTimeout_OnTheFirstDestination_TheGetIsRetriedOnTheOther()
    {
        using var unanswered = await UnansweredListener.StartAsync();
        await using var b = await TestUpstream.StartAsync("B");
        var config = new RouterConfig
        {
            Routes = [Route("r", "c")],
            // Round robin starts with the first destination: the GET meets the one that never answers first.
            Clusters = [ClusterOf("c", unanswered.Address, b.Address) with { ConnectTimeoutMs = 300, Retry = new RetryConfig { MaxAttempts = 2 } }],
        };
        await using var router = RouterFixture.Start(config);

        var watch = Stopwatch.StartNew();
        var response = await GetAsync(router);
        var elapsed = watch.Elapsed;

        Assert.That(response.StatusCode, Is.EqualTo(200));
        Assert.That(response.Header("X-Upstream"), Is.EqualTo("B"));
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(300)), "the first attempt waited for its connect timeout");
        var samples = PrometheusText.Parse(await router.AdminGetAsync("/metrics"));
        Assert.That(samples.Value("router_upstream_failures_total", ("cluster", "c"), ("reason", "connect_timeout")), Is.EqualTo(1));
        Assert.That(router.Host.Runtime.Retries, Is.EqualTo(1));
        await AssertGatesDrainedAsync(router);
    }

    // ---- Retries ----

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public async Task Retry_AGetIsSentExactlyMaxAttemptsTimes_EachTimeToADestinationNotTriedYet(int maxAttempts)
    {
        // Four destinations that take the connection and close it without a word: every attempt fails with no
        // response, which is retryable for a GET.
        var upstreams = Enumerable.Range(0, 4).Select(_ => new ScriptedUpstream(_ => Task.CompletedTask)).ToArray();
        try
        {
            var config = new RouterConfig
            {
                Routes = [Route("r", "c")],
                Clusters = [ClusterOf("c", upstreams.Select(u => u.Address).ToArray()) with { Retry = new RetryConfig { MaxAttempts = maxAttempts } }],
            };
            await using var router = RouterFixture.Start(config);
            var response = await GetAsync(router);
            Assert.That(response.StatusCode, Is.EqualTo(502));
            Assert.That(upstreams.Sum(u => u.Accepted), Is.EqualTo(maxAttempts), "retry.maxAttempts counts every attempt, the first included");
            Assert.That(upstreams.Max(u => u.Accepted), Is.EqualTo(1), "each retry goes to a destination not tried yet");
            await AssertGatesDrainedAsync(router);
        }
        finally
        {
            foreach (var upstream in upstreams)
            {
                await upstream.DisposeAsync();
            }
        }
    }

    [Test]
    public async Task Retry_WithNoOtherDestinationToTry_AnswersTheFailure_NotA503()
    {
        // One destination that takes the connection and closes it without a word: the GET is retryable, but there is
        // nowhere else to send it. The client must learn what happened (502), not that nothing was available.
        await using var upstream = new ScriptedUpstream(_ => Task.CompletedTask);
        var config = new RouterConfig
        {
            Routes = [Route("r", "c")],
            Clusters = [ClusterOf("c", upstream.Address) with { Retry = new RetryConfig { MaxAttempts = 3 } }],
        };
        await using var router = RouterFixture.Start(config);
        var response = await GetAsync(router);
        Assert.That(response.StatusCode, Is.EqualTo(502));
        Assert.That(response.Header("X-Router-Shed"), Is.Null, "not a shed");
        Assert.That(upstream.Accepted, Is.EqualTo(1), "no destination is tried twice");
        await AssertGatesDrainedAsync(router);
    }

    [TestCase("PUT", "Content-Length: 5\r\n\r\nhello")]
    [TestCase("POST", "\r\n")]
    public async Task Retry_ARequestWhoseBodyWentOut_OrThatIsNotIdempotent_IsNeverSentTwice(string method, string rest)
    {
        var upstreams = Enumerable.Range(0, 3).Select(_ => new ScriptedUpstream(async socket => await ScriptedUpstream.ReadHeadAsync(socket))).ToArray();
        try
        {
            var config = new RouterConfig
            {
                Routes = [Route("r", "c")],
                Clusters = [ClusterOf("c", upstreams.Select(u => u.Address).ToArray()) with { Retry = new RetryConfig { MaxAttempts = 3 } }],
            };
            await using var router = RouterFixture.Start(config);
            using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
            await client.SendAsync($"{method} /x HTTP/1.1\r\nHost: x\r\n{rest}");
            Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(502));
            Assert.That(upstreams.Sum(u => u.Accepted), Is.EqualTo(1), "sent once: the upstream may have acted on it");
            await AssertGatesDrainedAsync(router);
        }
        finally
        {
            foreach (var upstream in upstreams)
            {
                await upstream.DisposeAsync();
            }
        }
    }

    // ---- Concurrency limits across a reload ----

    [Test]
    public async Task RouteLimit_StillCountsARequestInFlight_AfterAReloadThatLeavesTheRouteUnchanged()
    {
        await using var upstream = new HoldingUpstream();
        var route = Route("r", "c") with { MaxConcurrentRequests = 1 };
        var config = new RouterConfig { Routes = [route], Clusters = [ClusterOf("c", upstream.Address)] };
        await using var router = RouterFixture.Start(config);

        using var first = await RawHttpClient.ConnectAsync(router.EndPoint);
        await first.SendAsync("GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
        await upstream.WaitForArrivalAsync();

        // An unrelated change: another route.
        var reloaded = config with { Routes = [route, Route("other", "c", prefix: "/other")] };
        Assert.That(router.Host.Applier.Apply(reloaded, "test").Applied, Is.True);

        var second = await GetPromptlyAsync(router);
        Assert.That(second.StatusCode, Is.EqualTo(503), "the route's one slot is still taken by the request in flight");
        Assert.That(second.Header("X-Router-Shed"), Is.EqualTo("route-limit"));
        Assert.That(upstream.Requests, Is.EqualTo(1), "nothing more reached the upstream");

        upstream.Release();
        Assert.That((await first.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
        await AssertGatesDrainedAsync(router);
        Assert.That((await GetAsync(router)).StatusCode, Is.EqualTo(200), "the slot is free again");
    }

    [Test]
    public async Task ClusterLimit_StillCountsARequestInFlight_AfterAReloadThatChangesAnotherClusterSetting()
    {
        await using var upstream = new HoldingUpstream();
        var cluster = ClusterOf("c", upstream.Address) with { MaxConcurrentRequests = 1 };
        var config = new RouterConfig { Routes = [Route("r", "c")], Clusters = [cluster] };
        await using var router = RouterFixture.Start(config);

        using var first = await RawHttpClient.ConnectAsync(router.EndPoint);
        await first.SendAsync("GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
        await upstream.WaitForArrivalAsync();

        // The cluster changes, but not its limit.
        var reloaded = config with { Clusters = [cluster with { ConnectTimeoutMs = 4000 }] };
        Assert.That(router.Host.Applier.Apply(reloaded, "test").Applied, Is.True);

        var second = await GetPromptlyAsync(router);
        Assert.That(second.StatusCode, Is.EqualTo(503), "the cluster's one slot is still taken by the request in flight");
        Assert.That(second.Header("X-Router-Shed"), Is.EqualTo("cluster-limit"));
        Assert.That(upstream.Requests, Is.EqualTo(1), "nothing more reached the upstream");

        upstream.Release();
        Assert.That((await first.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
        await AssertGatesDrainedAsync(router);
        Assert.That((await GetAsync(router)).StatusCode, Is.EqualTo(200), "the slot is free again");
    }

    /// <summary>A loopback address nothing listens on: connections are refused.</summary>
    private static string DeadAddress()
    {
        var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        string address = listener.LocalEndpoint.ToString()!;
        listener.Stop();
        return address;
    }

    // ---- Circuit breaker ----

    [Test]
    public async Task Breaker_HalfOpen_ABurstLetsExactlyTheTrialLimitThrough_AndTrialsWhoseClientsVanished_DoNotWedgeIt()
    {
        await using var a = await TestUpstream.StartAsync("A");
        var breaker = new CircuitBreakerConfig { ConsecutiveFailures = 2, BreakMs = 600, HalfOpenTrials = 2 };
        var config = new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", a) with { CircuitBreaker = breaker }] };
        await using var router = RouterFixture.Start(config);
        var destination = router.Host.Table.Current!.Clusters[0].Destinations[0];

        a.Mode = UpstreamMode.Fail500;
        Assert.That((await GetAsync(router)).StatusCode, Is.EqualTo(500));
        Assert.That((await GetAsync(router)).StatusCode, Is.EqualTo(500));
        Assert.That(await Eventually.TrueAsync(() => destination.Breaker!.State == CircuitState.Open, TimeSpan.FromSeconds(2)), Is.True);

        // The destination now hangs: trials never finish by themselves (the response timeout is 30 s).
        a.Mode = UpstreamMode.Hang;
        Assert.That(await Eventually.TrueAsync(() => destination.Breaker!.AllowsTraffic(MonotonicClock.NowMs), TimeSpan.FromSeconds(3)), Is.True);
        long before = a.Requests;
        var clients = new List<RawHttpClient>();
        for (int i = 0; i < 30; i++)
        {
            clients.Add(await RawHttpClient.ConnectAsync(router.EndPoint));
        }

        await Task.WhenAll(clients.Select(c => c.SendAsync("GET /burst HTTP/1.1\r\nHost: x\r\n\r\n")));
        var answers = await Task.WhenAll(clients.Select(async c =>
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            try
            {
                return (Client: c, Status: (await c.ReadResponseAsync(cancellationToken: timeout.Token)).StatusCode);
            }
            catch (OperationCanceledException)
            {
                return (Client: c, Status: 0);
            }
        }));
        Assert.That(answers.Count(x => x.Status == 503), Is.EqualTo(28), "all but the trials fail fast");
        Assert.That(answers.Count(x => x.Status == 0), Is.EqualTo(2), "exactly halfOpenTrials requests are let through");
        Assert.That(a.Requests - before, Is.EqualTo(2), "exactly halfOpenTrials requests reached the destination");

        // The trials' clients vanish; the destination recovers. The breaker must not stay half-open until the
        // trials' response timeout (or for ever): after a break a new trial goes through and closes it.
        foreach (var client in clients)
        {
            client.Dispose();
        }

        a.Mode = UpstreamMode.Normal;
        var watch = Stopwatch.StartNew();
        Assert.That(await Eventually.TrueAsync(() => GetAsync(router).GetAwaiter().GetResult().StatusCode == 200, TimeSpan.FromSeconds(10)), Is.True);
        TestContext.Out.WriteLine($"served again {watch.ElapsedMilliseconds} ms after the trials' clients left");
        Assert.That(await Eventually.TrueAsync(() => destination.Breaker!.State == CircuitState.Closed, TimeSpan.FromSeconds(2)), Is.True, "a trial success closes it");
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
    }

    [Test]
    public async Task Breaker_RefusingADestinationThePickSawAvailable_TheOtherHealthyDestinationServes_NeverA503()
    {
        await using var a = await TestUpstream.StartAsync("A");
        await using var b = await TestUpstream.StartAsync("B");
        var breaker = new CircuitBreakerConfig { ConsecutiveFailures = 1, BreakMs = 1_000, HalfOpenTrials = 1 };
        var config = new RouterConfig
        {
            Routes = [Route("r", "c")],
            Clusters = [Cluster("c", a, b) with { CircuitBreaker = breaker, LoadBalancing = "roundRobin" }],
        };
        await using var router = RouterFixture.Start(config);
        var breakerA = router.Host.Table.Current!.Clusters[0].Destinations[0].Breaker!;

        // A failure reported as of two breaks ago opens A with its break already over: available, one trial slot free.
        // Two breaks ago, and not before boot: the monotonic clock starts at 0 there, and a CI machine may be fresh.
        long past = MonotonicClock.NowMs - 2_000;
        breakerA.OnFailure(past, default);

        // This thread plays concurrent requests racing for A's one trial slot: it takes the slot and fails the trial
        // (A reopens, its break over again), round after round. So a request's pick can see A available and then find
        // the slot taken when it asks A's breaker, the window in which requests got 503 while B was healthy.
        using var stop = new CancellationTokenSource();
        var racer = Task.Factory.StartNew(
            () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    if (breakerA.TryAcquire(MonotonicClock.NowMs, out BreakerPermit permit))
                    {
                        breakerA.OnFailure(past, permit);
                    }
                }
            },
            TaskCreationOptions.LongRunning);

        var answers = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        async Task ClientAsync()
        {
            using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
            for (int i = 0; i < 250; i++)
            {
                await client.SendAsync("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
                var response = await client.ReadResponseAsync();
                string answer = $"{response.StatusCode} {response.Header("X-Upstream") ?? response.Header("X-Router-Shed")}";
                answers.AddOrUpdate(answer, 1, (_, n) => n + 1);
                if (response.StatusCode != 200)
                {
                    return;
                }
            }
        }

        try
        {
            await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => ClientAsync()));
        }
        finally
        {
            await stop.CancelAsync();
            await racer;
        }

        TestContext.Out.WriteLine(string.Join(", ", answers.Select(x => $"{x.Key}: {x.Value}")));
        Assert.That(answers.Keys.Where(k => !k.StartsWith("200 ", StringComparison.Ordinal)), Is.Empty, "every request is served, none shed while B is healthy");
        Assert.That(answers.GetValueOrDefault("200 B"), Is.GreaterThan(0), "B serves");
        await AssertGatesDrainedAsync(router);
    }

    // ---- Fallback, panic mode, destination connection limit ----

    [Test]
    public async Task Fallback_TheFallbackClustersOwnLimitApplies()
    {
        await using var primary = await TestUpstream.StartAsync("P");
        await using var fallback = new HoldingUpstream();
        var config = new RouterConfig
        {
            Routes = [Route("r", "primary", fallback: "static")],
            Clusters = [Cluster("primary", primary), ClusterOf("static", fallback.Address) with { MaxConcurrentRequests = 1 }],
        };
        await using var router = RouterFixture.Start(config);
        router.Host.Table.Current!.Clusters[0].Destinations[0].Disabled = true;

        using var first = await RawHttpClient.ConnectAsync(router.EndPoint);
        await first.SendAsync("GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
        await fallback.WaitForArrivalAsync();
        var second = await GetPromptlyAsync(router);
        Assert.That(second.StatusCode, Is.EqualTo(503));
        Assert.That(second.Header("X-Router-Shed"), Is.EqualTo("cluster-limit"));
        Assert.That(second.Header("Retry-After"), Is.Not.Null);
        Assert.That(primary.Requests, Is.Zero, "nothing went to the disabled primary");
        fallback.Release();
        Assert.That((await first.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
        await AssertGatesDrainedAsync(router);
    }

    [Test]
    public async Task PanicMode_WhenNothingIsAvailable_SendsToThePrimaryAnyway()
    {
        await using var a = await TestUpstream.StartAsync("A");
        var config = new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", a) with { PanicMode = true }] };
        await using var router = RouterFixture.Start(config);
        router.Host.Table.Current!.Clusters[0].Destinations[0].Disabled = true;
        Assert.That((await GetAsync(router)).StatusCode, Is.EqualTo(200));
        await AssertGatesDrainedAsync(router);
    }

    [Test]
    public async Task DestinationConnectionLimit_Over_Is503WithRetryAfter_AndTheSlotIsReleased()
    {
        await using var upstream = new HoldingUpstream();
        var config = new RouterConfig
        {
            Routes = [Route("r", "c")],
            Clusters = [ClusterOf("c", upstream.Address) with { MaxConnectionsPerDestination = 1 }],
        };
        await using var router = RouterFixture.Start(config);
        using var first = await RawHttpClient.ConnectAsync(router.EndPoint);
        await first.SendAsync("GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
        await upstream.WaitForArrivalAsync();
        var second = await GetPromptlyAsync(router);
        Assert.That(second.StatusCode, Is.EqualTo(503));
        Assert.That(second.Header("X-Router-Shed"), Is.EqualTo("destination-connection-limit"));
        Assert.That(second.Header("Retry-After"), Is.Not.Null);
        upstream.Release();
        Assert.That((await first.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
        await AssertGatesDrainedAsync(router);
        Assert.That((await GetAsync(router)).StatusCode, Is.EqualTo(200));
    }

    // ---- Everything down ----

    [Test]
    public async Task AllDestinationsDown_NoFallback_Quick503WithRetryAfter_ThenRecoversByItself()
    {
        await using var a = await TestUpstream.StartAsync("A");
        await using var b = await TestUpstream.StartAsync("B");
        var check = new HealthCheckConfig { Path = "/healthz", IntervalMs = 100, TimeoutMs = 300, UnhealthyThreshold = 1, HealthyThreshold = 1 };
        var config = new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", a, b) with { HealthCheck = check }] };
        await using var router = RouterFixture.Start(config);
        var destinations = router.Host.Table.Current!.Clusters[0].Destinations;

        a.Mode = UpstreamMode.Fail500;
        b.Mode = UpstreamMode.Fail500;
        Assert.That(await Eventually.TrueAsync(() => destinations.All(d => !d.Health!.IsHealthy), TimeSpan.FromSeconds(5)), Is.True);
        long reached = a.Requests + b.Requests;
        var watch = Stopwatch.StartNew();
        var response = await GetPromptlyAsync(router);
        Assert.That(response.StatusCode, Is.EqualTo(503));
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(1)), "fails fast, no timeout");
        Assert.That(response.Header("X-Router-Shed"), Is.EqualTo("no-available-destination"));
        Assert.That(response.Header("Retry-After"), Is.EqualTo("5"));

        a.Mode = UpstreamMode.Normal;
        b.Mode = UpstreamMode.Normal;
        Assert.That(await Eventually.TrueAsync(() => GetAsync(router).GetAwaiter().GetResult().StatusCode == 200, TimeSpan.FromSeconds(5)), Is.True, "recovers with no operator action");
        await AssertGatesDrainedAsync(router);
    }

    // ---- Active health across reloads ----

    [Test]
    public async Task HealthState_SurvivesAReloadThatKeepsTheDestination_AndRemovedClustersAreNoLongerProbed()
    {
        await using var a = await TestUpstream.StartAsync("A");
        await using var b = await TestUpstream.StartAsync("B");
        await using var d = await TestUpstream.StartAsync("D");
        var check = new HealthCheckConfig { Path = "/healthz", IntervalMs = 100, TimeoutMs = 300, UnhealthyThreshold = 1, HealthyThreshold = 3 };
        var baseConfig = new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", a, b) with { HealthCheck = check }] };
        var withD = baseConfig with
        {
            Routes = [Route("r", "c"), Route("rd", "d", prefix: "/d")],
            Clusters = [Cluster("c", a, b) with { HealthCheck = check }, Cluster("d", d) with { HealthCheck = check }],
        };
        await using var router = RouterFixture.Start(baseConfig);
        var destinationB = router.Host.Table.Current!.Clusters[0].Destinations[1];

        b.Mode = UpstreamMode.Fail500;
        Assert.That(await Eventually.TrueAsync(() => !destinationB.Health!.IsHealthy, TimeSpan.FromSeconds(5)), Is.True);
        b.Mode = UpstreamMode.Normal;

        // Many reloads adding and removing another health-checked cluster. B's state is kept (it needs three good
        // probes in a row to come back, not a reload), and D's probes stop once it is gone.
        for (int i = 0; i < 20; i++)
        {
            Assert.That(router.Host.Applier.Apply(i % 2 == 0 ? withD : baseConfig, "test").Applied, Is.True);
            Assert.That(router.Host.Table.Current!.Clusters[0].Destinations[1], Is.SameAs(destinationB));
        }

        Assert.That(destinationB.TransitionCount(), Is.EqualTo(1), "no reset to healthy on reload");
        long probes = d.Requests;
        await Task.Delay(600); // six probe intervals: a leaked loop would probe D again
        Assert.That(d.Requests - probes, Is.LessThanOrEqualTo(1), "the removed cluster is no longer probed (one probe may have been in flight)");
        Assert.That(await Eventually.TrueAsync(() => destinationB.Health!.IsHealthy, TimeSpan.FromSeconds(5)), Is.True, "B comes back on probes");
    }

    // ---- Concurrency slots on every path ----

    [Test]
    public async Task Chaos_EveryPathReleasesItsSlots_GatesAndInFlightCountsReturnToZero()
    {
        await using var a = await TestUpstream.StartAsync("A");
        await using var fb = await TestUpstream.StartAsync("F");
        var config = new RouterConfig
        {
            MaxConcurrentRequests = 200,
            Routes =
            [
                Route("r", "c") with { MaxConcurrentRequests = 100 },
                Route("fallback", "down", prefix: "/fb", fallback: "f") with { MaxConcurrentRequests = 100 },
            ],
            Clusters =
            [
                // One live and one dead destination: half the first attempts are refused and retried.
                ClusterOf("c", a.Address, DeadAddress()) with
                {
                    MaxConcurrentRequests = 100,
                    MaxConnectionsPerDestination = 50,
                    ResponseTimeoutMs = 300,
                    Retry = new RetryConfig { MaxAttempts = 2, MinConcurrent = 50 },
                    CircuitBreaker = new CircuitBreakerConfig { ConsecutiveFailures = 1000, BreakMs = 1000 },
                },
                ClusterOf("down", DeadAddress()) with { MaxConcurrentRequests = 100, CircuitBreaker = new CircuitBreakerConfig { ConsecutiveFailures = 1, BreakMs = 60_000 } },
                Cluster("f", fb) with { MaxConcurrentRequests = 100 },
            ],
        };
        await using var router = RouterFixture.Start(config);

        async Task Raw(string request, int sendThenClose = -1)
        {
            using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
            await client.SendAsync(request);
            if (sendThenClose >= 0)
            {
                // The client vanishes mid-body or while waiting for the answer.
                if (sendThenClose > 0)
                {
                    await Task.Delay(sendThenClose);
                }

                client.Socket.Close(0);
                return;
            }

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await client.ReadResponseAsync(cancellationToken: timeout.Token);
            }
            catch (Exception ex) when (ex is IOException or SocketException or EndOfStreamException)
            {
                // Some paths end the connection without an answer (client abort seen by the upstream).
            }
        }

        var upgradeAnswers = new System.Collections.Concurrent.ConcurrentBag<string>();
        async Task WebSocket()
        {
            using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
            await client.SendAsync("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
            var response = await client.ReadResponseAsync(headRequest: true);
            upgradeAnswers.Add(response.StatusCode + " " + response.Header("X-Router-Shed"));
            client.Socket.Close(0); // the client vanishes in the middle of the tunnel
        }

        var work = new List<Task>();
        for (int round = 0; round < 8; round++)
        {
            work.Add(Raw("GET /x HTTP/1.1\r\nHost: x\r\n\r\n"));                                        // served or retried
            work.Add(Raw("GET /status/503 HTTP/1.1\r\nHost: x\r\n\r\n"));                               // 5xx
            work.Add(Raw("GET /slow/2000 HTTP/1.1\r\nHost: x\r\n\r\n"));                                // response timeout, 504
            work.Add(Raw("GET /slow/1000 HTTP/1.1\r\nHost: x\r\n\r\n", sendThenClose: 50));            // client leaves while waiting
            work.Add(Raw("POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc", sendThenClose: 50)); // client leaves mid-body
            work.Add(Raw("POST /status/200 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc")); // early answer (405) before the body
            work.Add(Raw("PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"));          // body, maybe on the dead destination
            work.Add(Raw("GET /fb/x HTTP/1.1\r\nHost: x\r\n\r\n"));                                     // primary refused, breaker, fallback
            work.Add(WebSocket());                                                                           // 101 tunnel
        }

        await Task.WhenAll(work);
        TestContext.Out.WriteLine("upgrades: " + string.Join(", ", upgradeAnswers));
        await AssertGatesDrainedAsync(router);
        var pool = Router.Net.Forwarding.UpstreamPool.For(router.Host.Table.Current!.Clusters[0].Destinations[0]);
        Assert.That(await Eventually.TrueAsync(() => pool.OpenConnections == pool.IdleConnections, TimeSpan.FromSeconds(5)), Is.True,
            "every upstream connection still open is idle in the pool (none leaked against the destination's connection limit)");
        Assert.That(router.Host.Runtime.Retries, Is.GreaterThan(0), "the retry path was taken");
    }

    [Test]
    public async Task Fallback_ServesWhenThePrimaryDestinationIsAtItsConnectionLimit()
    {
        await using var primary = new HoldingUpstream();
        await using var fallback = await TestUpstream.StartAsync("F");
        var config = new RouterConfig
        {
            Routes = [Route("r", "primary", fallback: "static")],
            Clusters = [ClusterOf("primary", primary.Address) with { MaxConnectionsPerDestination = 1 }, Cluster("static", fallback)],
        };
        await using var router = RouterFixture.Start(config);
        using var first = await RawHttpClient.ConnectAsync(router.EndPoint);
        await first.SendAsync("GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
        await primary.WaitForArrivalAsync();

        var second = await GetPromptlyAsync(router);
        Assert.That(second.StatusCode, Is.EqualTo(200), "the primary's only destination is at its limit: the fallback serves");
        Assert.That(second.Header("X-Upstream"), Is.EqualTo("F"));
        primary.Release();
        Assert.That((await first.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
        await AssertGatesDrainedAsync(router);
    }

    [Test]
    public async Task Outlier_EjectsAfterConsecutiveFailures_AndReadmitsAfterTheEjectionTime()
    {
        await using var a = await TestUpstream.StartAsync("A");
        await using var b = await TestUpstream.StartAsync("B");
        var passive = new PassiveHealthConfig { ConsecutiveFailures = 2, EjectionMs = 800, MaxEjectionPercent = 50 };
        var config = new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", a, b) with { PassiveHealth = passive }] };
        await using var router = RouterFixture.Start(config);
        var destinationB = router.Host.Table.Current!.Clusters[0].Destinations[1];
        b.Mode = UpstreamMode.Fail500;
        for (int i = 0; i < 4; i++)
        {
            await GetAsync(router);
        }

        Assert.That(await Eventually.TrueAsync(() => destinationB.Outlier!.IsEjected(MonotonicClock.NowMs), TimeSpan.FromSeconds(2)), Is.True);
        var watch = Stopwatch.StartNew();
        long reached = b.Requests;
        for (int i = 0; i < 10; i++)
        {
            Assert.That((await GetAsync(router)).StatusCode, Is.EqualTo(200));
        }

        Assert.That(b.Requests, Is.EqualTo(reached), "no traffic while ejected");
        b.Mode = UpstreamMode.Normal;
        Assert.That(await Eventually.TrueAsync(() => !destinationB.Outlier!.IsEjected(MonotonicClock.NowMs), TimeSpan.FromSeconds(3)), Is.True);
        TestContext.Out.WriteLine($"readmitted after {watch.ElapsedMilliseconds} ms (ejection 800 ms)");
        Assert.That(await Eventually.TrueAsync(() => { GetAsync(router).GetAwaiter().GetResult(); return b.Requests > reached; }, TimeSpan.FromSeconds(2)), Is.True, "B serves again");
    }
}

internal static class DestinationStateTestExtensions
{
    public static long TransitionCount(this DestinationState destination) => destination.Health?.TransitionCount ?? -1;
}
