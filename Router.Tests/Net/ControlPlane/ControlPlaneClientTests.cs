using NUnit.Framework;
using Router.Core.Configuration;
using Router.Core.ControlPlane;
using Router.Net.ControlPlane;
using Router.Tests.ControlPlane;

namespace Router.Tests.Net.ControlPlane;

public sealed class ControlPlaneClientTests
{
    [Test]
    public async Task PutValidConfig_IsPushedToThreeConnectedRouters_WhichAck_AndRoutersShowTheAppliedVersion()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        var sinks = new[] { new FakeConfigSink(), new FakeConfigSink(), new FakeConfigSink() };
        var clients = new ControlPlaneClient[sinks.Length];
        for (var i = 0; i < sinks.Length; i++)
        {
            clients[i] = new ControlPlaneClient(Options(cp, "node-" + i, dir.Sub("cache-" + i)), sinks[i]);
            clients[i].Start();
        }

        try
        {
            await cp.WaitForFleetAsync(f => f.Count == 3 && f.All(r => r.Connected), "three routers connected");
            var applied = sinks.Select(s => s.NextApplyAsync()).ToArray();

            var (version, hash) = await cp.PutValidConfigAsync(TestConfigs.Valid(9001));
            var results = await Task.WhenAll(applied);
            await cp.WaitForFleetAsync(f => f.All(r => r.AppliedVersion == version), "every router acked");

            Assert.That(results.Select(r => (r.Applied, r.Version, r.Hash)), Is.All.EqualTo((true, (long?)version, hash)));
            for (var i = 0; i < 3; i++)
            {
                var router = await cp.GetRouterAsync("node-" + i);
                Assert.That(router.GetProperty("connected").GetBoolean(), Is.True);
                Assert.That(router.GetProperty("appliedVersion").GetInt64(), Is.EqualTo(version));
                Assert.That(router.GetProperty("appliedHash").GetString(), Is.EqualTo(hash));
                Assert.That(router.GetProperty("remoteAddress").GetString(), Does.StartWith("127.0.0.1:"));
                Assert.That(clients[i].AppliedVersion, Is.EqualTo(version));
                Assert.That(clients[i].State, Is.EqualTo(ControlPlaneState.Connected));
            }
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Test]
    public async Task PutInvalidConfig_IsNotPushedToConnectedRouters()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        var sink = new FakeConfigSink();
        await using var client = new ControlPlaneClient(Options(cp, "node-a", null), sink);
        client.Start();
        await cp.WaitForFleetAsync(f => f.Count == 1 && f[0].Connected, "router connected");

        using var response = await cp.PutConfigAsync(TestConfigs.Invalid);
        // A valid PUT afterwards is the first thing the router receives: the invalid one never reached it.
        var next = sink.NextApplyAsync();
        var (version, _) = await cp.PutValidConfigAsync(TestConfigs.Valid(9001));
        var first = await next;

        Assert.That((int)response.StatusCode, Is.EqualTo(400));
        Assert.That(first.Version, Is.EqualTo(version));
        Assert.That(version, Is.EqualTo(1));
        Assert.That(sink.ApplyCount, Is.EqualTo(1));
    }

    [Test]
    public async Task Router_WhoseSinkRejects_SendsNack_AndTheErrorsShowInRouters()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        var sink = new FakeConfigSink
        {
            RejectWith = [new ConfigError("$.clusters[0].destinations[0].address", "cannot resolve"), new ConfigError("$.routes[0].cluster", "no such cluster")],
        };
        await using var client = new ControlPlaneClient(Options(cp, "picky", dir.Sub("cache")), sink);
        client.Start();
        await cp.WaitForFleetAsync(f => f.Count == 1 && f[0].Connected, "router connected");

        var (version, _) = await cp.PutValidConfigAsync(TestConfigs.Valid(9001));
        await cp.WaitForFleetAsync(f => f[0].LastNackVersion == version, "nack recorded");

        var router = await cp.GetRouterAsync("picky");
        var errors = router.GetProperty("lastNackErrors");
        Assert.Multiple(() =>
        {
            Assert.That(errors.GetArrayLength(), Is.EqualTo(2));
            Assert.That(errors[0].GetProperty("path").GetString(), Is.EqualTo("$.clusters[0].destinations[0].address"));
            Assert.That(errors[1].GetProperty("message").GetString(), Is.EqualTo("no such cluster"));
            Assert.That(router.GetProperty("appliedVersion").ValueKind, Is.EqualTo(System.Text.Json.JsonValueKind.Null));
            Assert.That(client.LastError, Does.Contain("rejected"));
            Assert.That(LastKnownGoodCache.TryLoad(dir.Sub("cache"), out _, out _, out _), Is.False, "a rejected config is never cached");
        });
    }

    [Test]
    public async Task Router_HelloWithTheCurrentHash_IsNotPushedAgain()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path, heartbeat: TimeSpan.FromMilliseconds(100));
        var (version, hash) = await cp.PutValidConfigAsync(TestConfigs.Valid(9001));
        var sink = new FakeConfigSink();
        sink.Preload(version, hash); // as if loaded from last-known-good at boot
        await using var client = new ControlPlaneClient(Options(cp, "cached", null), sink);
        client.Start();

        await cp.WaitForFleetAsync(f => f.Count == 1 && f[0].Connected && f[0].AppliedVersion == version, "router connected up to date");
        // Heartbeats flow both ways; a later push would arrive before this one.
        var v2 = sink.NextApplyAsync();
        var (next, _) = await cp.PutValidConfigAsync(TestConfigs.Valid(9002));
        var applied = await v2;

        Assert.That(applied.Version, Is.EqualTo(next), "the first config the router saw is the new one");
        Assert.That(sink.ApplyCount, Is.EqualTo(1));
    }

    [Test]
    public async Task Router_ReconnectsAfterTheControlPlaneRestarts_AndConvergesOnItsNewestVersion()
    {
        using var dir = new TempDir();
        var data = dir.Sub("data");
        var cp = await TestControlPlane.StartAsync(data);
        var port = cp.Port;
        var sink = new FakeConfigSink();
        await using var client = new ControlPlaneClient(Options(cp, "node-a", dir.Sub("cache")), sink);
        var disconnected = WaitForState(client, ControlPlaneState.Disconnected);
        try
        {
            var v1 = sink.NextApplyAsync();
            await cp.PutValidConfigAsync(TestConfigs.Valid(9001));
            client.Start();
            await v1;
        }
        finally
        {
            await cp.DisposeAsync();
        }

        await disconnected;
        // While the CP is down an operator changes the config offline (same store the CP will reload).
        new Router.ControlPlane.Store.ConfigStore(data).Add(
            ConfigLoader.Serialize(ConfigLoader.Load(System.Text.Encoding.UTF8.GetBytes(TestConfigs.Valid(9002))).Config!),
            ConfigLoader.Load(System.Text.Encoding.UTF8.GetBytes(TestConfigs.Valid(9002))).Hash,
            "offline");
        var v2 = sink.NextApplyAsync(r => r.Version == 2);

        await using var restarted = await TestControlPlane.StartAsync(data, port: port);
        var applied = await v2;
        await restarted.WaitForFleetAsync(f => f.Count == 1 && f[0].Connected && f[0].AppliedVersion == 2, "router converged on version 2");

        Assert.That(applied.Applied, Is.True);
        Assert.That(client.ConnectCount, Is.GreaterThanOrEqualTo(2));
        Assert.That(client.State, Is.EqualTo(ControlPlaneState.Connected));
        Assert.That(LastKnownGoodCache.TryLoad(dir.Sub("cache"), out _, out var cachedVersion, out _), Is.True);
        Assert.That(cachedVersion, Is.EqualTo(2));
    }

    [Test]
    public async Task Router_WhenTheControlPlaneGoesSilent_ReconnectsAfterThreeHeartbeats()
    {
        using var dir = new TempDir();
        // The CP's own heartbeats are far apart, so only the client's receive timeout can end the session.
        await using var cp = await TestControlPlane.StartAsync(dir.Path, heartbeat: TimeSpan.FromMinutes(5));
        var sink = new FakeConfigSink();
        var options = Options(cp, "node-a", null, heartbeat: TimeSpan.FromMilliseconds(100));
        await using var client = new ControlPlaneClient(options, sink);
        var reconnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        client.StateChanged += s =>
        {
            if (s == ControlPlaneState.Connected && client.ConnectCount >= 2)
            {
                reconnected.TrySetResult();
            }
        };

        client.Start();
        await reconnected.Task.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.That(client.ConnectCount, Is.GreaterThanOrEqualTo(2));
    }

    [Test]
    public async Task Router_WithAWrongToken_ReportsUnauthorizedAndNeverConnects()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        await cp.PutValidConfigAsync(TestConfigs.Valid(9001));
        var sink = new FakeConfigSink();
        var options = new ControlPlaneClientOptions { Uri = cp.RouterUri, Token = "wrong", NodeId = "intruder", BackoffBase = TimeSpan.FromMilliseconds(10), BackoffCap = TimeSpan.FromMilliseconds(50) };
        await using var client = new ControlPlaneClient(options, sink);
        var secondAttempt = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var disconnects = 0;
        client.StateChanged += s =>
        {
            if (s == ControlPlaneState.Disconnected && Interlocked.Increment(ref disconnects) >= 2)
            {
                secondAttempt.TrySetResult();
            }
        };

        client.Start();
        await secondAttempt.Task.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.That(client.LastError, Does.Contain("401"));
        Assert.That(client.ConnectCount, Is.Zero);
        Assert.That(sink.ApplyCount, Is.Zero);
        Assert.That(cp.Fleet.Snapshot(), Is.Empty);
    }

    [Test]
    public async Task Router_AfterALargeConfigFrame_HoldsOnlyTheSmallReceiveBuffer()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        var sink = new FakeConfigSink();
        await using var client = new ControlPlaneClient(Options(cp, "node-a", null), sink);
        client.Start();
        await cp.WaitForFleetAsync(f => f.Count == 1 && f[0].Connected, "router connected");

        // Two thousand routes: a config frame of well over 100 KiB, far beyond the small buffer.
        var routes = new System.Text.StringBuilder();
        for (int i = 0; i < 2000; i++)
        {
            routes.Append(i == 0 ? "" : ",").Append($$"""{ "id": "route-{{i}}", "match": { "pathPrefix": "/service-{{i}}/" }, "cluster": "c" }""");
        }

        string json = $$"""{ "routes": [ {{routes}} ], "clusters": [ { "id": "c", "destinations": [ { "address": "127.0.0.1:9001" } ] } ] }""";
        var applied = sink.NextApplyAsync();
        var (version, _) = await cp.PutValidConfigAsync(json);
        var result = await applied;
        await cp.WaitForFleetAsync(f => f[0].AppliedVersion == version, "the router acked");

        Assert.Multiple(() =>
        {
            Assert.That(result.Applied, Is.True);
            Assert.That(sink.LastJson!.Length, Is.GreaterThan(100_000), "the whole frame was read");
            Assert.That(client.ReceiveBufferBytes, Is.EqualTo(FrameBuffer.SmallSize), "the router no longer holds the array the large config needed");
        });
    }

    [Test]
    public void Backoff_IsFullJitterDoublingUpToTheCap()
    {
        var b = TimeSpan.FromMilliseconds(250);
        var cap = TimeSpan.FromSeconds(30);

        Assert.Multiple(() =>
        {
            Assert.That(ControlPlaneClient.ComputeBackoff(0, b, cap, 0.999), Is.LessThan(b));
            Assert.That(ControlPlaneClient.ComputeBackoff(3, b, cap, 0.5), Is.EqualTo(TimeSpan.FromMilliseconds(1000)));
            Assert.That(ControlPlaneClient.ComputeBackoff(3, b, cap, 0), Is.EqualTo(TimeSpan.Zero));
            Assert.That(ControlPlaneClient.ComputeBackoff(20, b, cap, 0.999), Is.LessThan(cap));
            Assert.That(ControlPlaneClient.ComputeBackoff(1000, b, cap, 1), Is.EqualTo(cap));
        });
    }

    internal static ControlPlaneClientOptions Options(TestControlPlane cp, string nodeId, string? cacheDir, TimeSpan? heartbeat = null, string? caFile = null) => new()
    {
        Uri = cp.RouterUri,
        Token = TestControlPlane.RouterToken,
        NodeId = nodeId,
        CacheDirectory = cacheDir,
        CaFile = caFile,
        HeartbeatInterval = heartbeat ?? TimeSpan.FromSeconds(1),
        BackoffBase = TimeSpan.FromMilliseconds(20),
        BackoffCap = TimeSpan.FromMilliseconds(200),
        ConnectTimeout = TimeSpan.FromSeconds(5),
    };

    private static Task WaitForState(ControlPlaneClient client, ControlPlaneState state)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var seenConnected = false;
        client.StateChanged += s =>
        {
            seenConnected |= s == ControlPlaneState.Connected;
            if (seenConnected && s == state)
            {
                done.TrySetResult();
            }
        };

        return done.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
