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
}
