using System.Buffers;
using System.Net;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using System.Text;
using NUnit.Framework;
using Router.ControlPlane.Store;
using Router.Core.Configuration;
using Router.Core.ControlPlane;
using RouterHubTests = Router.Tests.ControlPlane.RouterHubTests;
using TempDir = Router.Tests.ControlPlane.TempDir;
using TestControlPlane = Router.Tests.ControlPlane.TestControlPlane;
using TestConfigs = Router.Tests.ControlPlane.TestConfigs;
using Router.Tests.Support;

namespace Router.Tests.EndToEnd;

/// <summary>The control plane server as an operator runs it: the real <c>router-cp</c> process and real sockets.</summary>
public sealed class ControlPlaneAuditTests
{
    /// <summary>Ways the data directory can be damaged (a disk filling up, a bad restore, a hand edit).</summary>
    public enum Damage
    {
        GarbageIndex,
        TruncatedIndex,
        IndexWithoutVersions,
        MissingCurrentVersion,
        TornCurrentVersion,
    }

    [TestCase(Damage.GarbageIndex, "index.json")]
    [TestCase(Damage.TruncatedIndex, "index.json")]
    [TestCase(Damage.IndexWithoutVersions, "index.json")]
    [TestCase(Damage.MissingCurrentVersion, "v2.json")]
    [TestCase(Damage.TornCurrentVersion, "v2.json")]
    public async Task CorruptedStore_RefusesToStart_WithAClearErrorNamingTheFile(Damage damage, string file)
    {
        using var dir = new TempDir();
        string data = dir.Sub("data");
        var store = new ConfigStore(data);
        foreach (var port in new[] { 9001, 9002 })
        {
            var loaded = ConfigLoader.Load(Encoding.UTF8.GetBytes(TestConfigs.Valid(port)));
            store.Add(ConfigLoader.Serialize(loaded.Config!), loaded.Hash, "test");
        }

        string index = Path.Combine(data, "index.json"), current = Path.Combine(data, "v2.json");
        switch (damage)
        {
            case Damage.GarbageIndex:
                await File.WriteAllTextAsync(index, "garbage");
                break;
            case Damage.TruncatedIndex:
                var bytes = await File.ReadAllBytesAsync(index);
                await File.WriteAllBytesAsync(index, bytes[..(bytes.Length / 2)]);
                break;
            case Damage.IndexWithoutVersions:
                await File.WriteAllTextAsync(index, "{}");
                break;
            case Damage.MissingCurrentVersion:
                File.Delete(current);
                break;
            case Damage.TornCurrentVersion:
                var config = await File.ReadAllBytesAsync(current);
                await File.WriteAllBytesAsync(current, config[..(config.Length / 2)]);
                break;
        }

        var (exitCode, output) = await RunControlPlaneAsync(dir, data);

        Assert.That(exitCode, Is.EqualTo(1), "refuses to start with exit code 1:\n" + output);
        Assert.That(output, Does.Contain("router-cp: ").And.Contain(file).And.Contain(data), "names the damaged file");
        Assert.That(output, Does.Not.Contain("Unhandled exception"), "an error message, not a crash");
    }

    [TestCase("missing certificate", "--cert", "cannot read")]
    [TestCase("key of another certificate", "--cert/--key", "is not the private key of")]
    public async Task UnusableCertificateOrKey_RefusesToStart_WithAClearErrorNamingTheFlag(string what, string flag, string reason)
    {
        using var dir = new TempDir();
        using var pki = new Router.Tests.Net.Tls.TestPki();
        var (certFile, keyFile, _) = pki.Create("cp", "cp.test");
        if (what == "missing certificate")
        {
            File.Delete(certFile);
        }
        else
        {
            var other = pki.Create("other", "other.test");
            File.Copy(other.KeyFile, keyFile, overwrite: true);
        }

        var (exitCode, output) = await RunControlPlaneAsync(dir, dir.Sub("data"), "--cert", certFile, "--key", keyFile);

        Assert.That(exitCode, Is.EqualTo(1), what + ": refuses to start with exit code 1:\n" + output);
        Assert.That(output, Does.Contain("router-cp: " + flag).And.Contain(reason), what);
        Assert.That(output, Does.Not.Contain("Unhandled exception"), "an error message, not a crash");
    }

    [TestCase("missing", "cannot read")]
    [TestCase("empty", "is empty")]
    [TestCase("whitespace only", "is empty")]
    public async Task Router_WithAnUnusableTokenFile_RefusesToStart_WithAClearError(string what, string reason)
    {
        using var dir = new TempDir();
        string token = dir.Sub("router.token");
        if (what != "missing")
        {
            await File.WriteAllTextAsync(token, what == "empty" ? "" : " \r\n\t\n");
        }

        await using var router = await RouterProcess.StartAsync(
            ["--control-plane", "ws://127.0.0.1:9/ws/router", "--token-file", token, "--node-id", "r1"], waitReady: false);
        int exitCode = await router.WaitForExitAsync(TimeSpan.FromSeconds(20));

        Assert.That(exitCode, Is.EqualTo(2), what + ":\n" + router.Output);
        Assert.That(router.Output, Does.Contain("--token-file: ").And.Contain(token).And.Contain(reason));
        Assert.That(router.Output, Does.Not.Contain("Unhandled exception"), "an error message, not a stack trace");
    }

    [Test]
    public async Task RouterThatNeverReads_DoesNotHoldUpPushesToTheOthers()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path, heartbeat: TimeSpan.FromMilliseconds(200));
        await cp.PutValidConfigAsync(BigConfig(0));

        // The stuck router: says hello and keeps heartbeating (so it is never timed out) but never reads a byte.
        using var stuck = await cp.ConnectRawAsync();
        await RouterHubTests.SendAsync(stuck, new HelloMessage("stuck", "test", null, null));
        using var stopHeartbeats = new CancellationTokenSource();
        var stuckHeartbeats = HeartbeatAsync(stuck, stopHeartbeats.Token);
        using var healthy = await cp.ConnectRawAsync();
        await RouterHubTests.SendAsync(healthy, new HelloMessage("healthy", "test", null, null));
        var healthyHeartbeats = HeartbeatAsync(healthy, stopHeartbeats.Token);
        Assert.That(await ReceiveConfigVersionAsync(healthy), Is.EqualTo(1));

        // Every push is ~1 MB: a few fill the stuck router's socket buffers and its send blocks for good.
        long last = 0;
        for (int i = 1; i <= 20; i++)
        {
            (last, _) = await cp.PutValidConfigAsync(BigConfig(i));
            Assert.That(await ReceiveConfigVersionAsync(healthy, last), Is.EqualTo(last), $"push {i} reached the healthy router");
        }

        Assert.That(cp.Hub.SessionCount, Is.EqualTo(2), "the stuck router is still connected: its heartbeats keep it alive");
        await stopHeartbeats.CancelAsync();
        await Task.WhenAll(stuckHeartbeats, healthyHeartbeats);
    }

    /// <summary>Sends a heartbeat every 100 ms, as a live router does, until cancelled.</summary>
    private static async Task HeartbeatAsync(WebSocket ws, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            await RouterHubTests.SendAsync(ws, new HeartbeatMessage(null));
            try
            {
                await Task.Delay(100, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    [Test]
    public async Task OversizedFrameFromARouter_EndsItsSessionWithMessageTooBig_OthersStay()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        using var other = await cp.ConnectRawAsync();
        await RouterHubTests.SendAsync(other, new HelloMessage("other", "test", null, null));
        using var big = await cp.ConnectRawAsync();
        await RouterHubTests.SendAsync(big, new HelloMessage("big", "test", null, null));
        await cp.WaitForFleetAsync(f => f.Count == 2 && f.All(r => r.Connected), "both connected");

        // One text message larger than the 16 MiB frame limit, sent in 1 MiB fragments.
        var chunk = new byte[1024 * 1024];
        chunk.AsSpan().Fill((byte)' ');
        WebSocketCloseStatus? status = null;
        try
        {
            for (int i = 0; i < 18; i++)
            {
                await big.SendAsync(chunk, WebSocketMessageType.Text, endOfMessage: false, CancellationToken.None);
            }

            var buffer = new byte[64 * 1024];
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            while ((await big.ReceiveAsync(buffer, timeout.Token)).MessageType != WebSocketMessageType.Close)
            {
            }

            status = big.CloseStatus;
        }
        catch (Exception ex) when (ex is WebSocketException or IOException)
        {
            // The server may close before every fragment is written.
            status = big.CloseStatus;
        }

        Assert.That(status, Is.EqualTo(WebSocketCloseStatus.MessageTooBig), "the router is told why");
        await cp.WaitForFleetAsync(f => f.Single(r => r.NodeId == "big").Connected == false, "oversized sender disconnected");
        Assert.That(cp.Fleet.Snapshot().Single(r => r.NodeId == "other").Connected, Is.True);
        Assert.That(cp.Hub.SessionCount, Is.EqualTo(1));
    }

    [Test]
    public async Task GarbageFramesFromARouter_AreIgnored_AndGarbageInsteadOfHelloIsClosedAsAPolicyViolation()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        var (version, hash) = await cp.PutValidConfigAsync(TestConfigs.Valid(9001));

        using var noHello = await cp.ConnectRawAsync();
        await noHello.SendAsync(Encoding.UTF8.GetBytes("GET / HTTP/1.1"), WebSocketMessageType.Text, true, CancellationToken.None);
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            var result = await noHello.ReceiveAsync(new byte[4096], timeout.Token);
            Assert.That(result.MessageType, Is.EqualTo(WebSocketMessageType.Close));
            Assert.That(noHello.CloseStatus, Is.EqualTo(WebSocketCloseStatus.PolicyViolation));
        }

        using var ws = await cp.ConnectRawAsync();
        await RouterHubTests.SendAsync(ws, new HelloMessage("noisy", "test", null, null));
        Assert.That(await ReceiveConfigVersionAsync(ws), Is.EqualTo(version));
        await ws.SendAsync(new byte[] { 0xff, 0x00, 0x13, 0x37 }, WebSocketMessageType.Binary, true, CancellationToken.None);
        await ws.SendAsync(Encoding.UTF8.GetBytes("not json"), WebSocketMessageType.Text, true, CancellationToken.None);
        await ws.SendAsync(Encoding.UTF8.GetBytes("{\"type\":\"nope\"}"), WebSocketMessageType.Text, true, CancellationToken.None);
        await RouterHubTests.SendAsync(ws, new AckMessage(version, hash));

        await cp.WaitForFleetAsync(f => f.SingleOrDefault(r => r.NodeId == "noisy") is { Connected: true, AppliedVersion: var v } && v == version,
            "the ack after the garbage is recorded on a live session");
    }

    [Test]
    public async Task RoutersConnectingAndDisconnectingRepeatedly_LeaveNoSessionBehind()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        var (version, _) = await cp.PutValidConfigAsync(TestConfigs.Valid(9001));

        for (int round = 0; round < 20; round++)
        {
            var sockets = await Task.WhenAll(Enumerable.Range(0, 10).Select(async i =>
            {
                var ws = await cp.ConnectRawAsync();
                await RouterHubTests.SendAsync(ws, new HelloMessage("churn-" + i, "test", null, null));
                Assert.That(await ReceiveConfigVersionAsync(ws), Is.EqualTo(version));
                return ws;
            }));
            for (int i = 0; i < sockets.Length; i++)
            {
                // Half close politely, half just drop the connection.
                if (i % 2 == 0)
                {
                    await sockets[i].CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
                }
                else
                {
                    sockets[i].Abort();
                }

                sockets[i].Dispose();
            }
        }

        await cp.WaitForFleetAsync(f => f.Count == 10 && f.All(r => !r.Connected), "every router marked disconnected, one entry per node id");
        Assert.That(await Eventually.TrueAsync(() => cp.Hub.SessionCount == 0, TimeSpan.FromSeconds(10)), Is.True, "no session left behind");
    }

    [Test]
    public async Task Router_WhoseSessionsTheControlPlaneDropsRightAfterTheUpgrade_RetriesWithBackoff_NotInATightLoop()
    {
        // A control plane that accepts the upgrade, reads the hello and closes (a hub failing on every session, e.g.
        // the damaged store of an older version): the fleet must back off (250 ms base, doubling), not hammer it.
        var upgrades = 0;
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        await using var failing = builder.Build();
        failing.UseWebSockets();
        failing.Map("/ws/router", async (HttpContext context) =>
        {
            using var ws = await context.WebSockets.AcceptWebSocketAsync();
            Interlocked.Increment(ref upgrades);
            first.TrySetResult();
            await ws.ReceiveAsync(new byte[64 * 1024], context.RequestAborted);
            await ws.CloseOutputAsync(WebSocketCloseStatus.InternalServerError, "hub failed", context.RequestAborted);
        });
        await failing.StartAsync();
        using var dir = new TempDir();
        string token = dir.Sub("router.token");
        await File.WriteAllTextAsync(token, "t\n");
        var url = new Uri(failing.Urls.First());

        await using var router = await RouterProcess.StartAsync(
            ["--control-plane", $"ws://{url.Authority}/ws/router", "--token-file", token, "--node-id", "r1"], waitReady: false);
        await first.Task.WaitAsync(TimeSpan.FromSeconds(20));
        int atFirst = Volatile.Read(ref upgrades);
        await Task.Delay(TimeSpan.FromSeconds(4));
        int inFourSeconds = Volatile.Read(ref upgrades) - atFirst;

        // With backoff the ceilings are 0.25, 0.5, 1, 2, 4 s...: at most ~6 attempts in 4 s. Without it (the backoff
        // reset on every upgrade) a delay in [0, 250 ms) each time: 20 and more.
        Assert.That(inFourSeconds, Is.LessThanOrEqualTo(10), "reconnects in 4 s:\n" + router.Output);
        Assert.That(inFourSeconds, Is.GreaterThanOrEqualTo(1), "it does keep retrying");
    }

    /// <summary>A valid config of roughly 1 MB (many routes), different for each <paramref name="n"/>.</summary>
    private static string BigConfig(int n)
    {
        var routes = string.Join(",", Enumerable.Range(0, 6000).Select(i =>
            $$"""{ "id": "route-{{i}}-{{n}}", "match": { "pathPrefix": "/some/rather/long/path/prefix/{{i}}/" }, "cluster": "c" }"""));
        return $$"""{ "routes": [ {{routes}} ], "clusters": [ { "id": "c", "destinations": [ { "address": "127.0.0.1:9001" } ] } ] }""";
    }

    /// <summary>Reads frames until a config arrives (skipping heartbeats) whose version is at least <paramref name="atLeast"/>.</summary>
    private static async Task<long> ReceiveConfigVersionAsync(WebSocket ws, long atLeast = 0)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var buffer = new ArrayBufferWriter<byte>();
        while (true)
        {
            buffer.ResetWrittenCount();
            ValueWebSocketReceiveResult result;
            do
            {
                result = await ws.ReceiveAsync(buffer.GetMemory(64 * 1024), timeout.Token);
                buffer.Advance(result.Count);
            }
            while (!result.EndOfMessage);

            Assert.That(ControlPlaneCodec.TryParse(buffer.WrittenSpan, out var message, out var error), Is.True, error);
            if (message is ConfigMessage config && config.Version >= atLeast)
            {
                return config.Version;
            }
        }
    }

    /// <summary>Runs router-cp on <paramref name="data"/> until it exits (it must, within 20 s).</summary>
    private static async Task<(int ExitCode, string Output)> RunControlPlaneAsync(TempDir dir, string data, params string[] extraArgs)
    {
        string routerToken = dir.Sub("router.token"), adminToken = dir.Sub("admin.token");
        await File.WriteAllTextAsync(routerToken, "r\n");
        await File.WriteAllTextAsync(adminToken, "a\n");
        return await RouterProcess.RunToExitAsync(
            "Router.ControlPlane",
            new[] { "--listen", $"127.0.0.1:{RouterProcess.FreePort()}", "--data-dir", data, "--token-file", routerToken, "--admin-token-file", adminToken }.Concat(extraArgs));
    }
}
