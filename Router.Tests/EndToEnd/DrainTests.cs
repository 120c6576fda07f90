using NUnit.Framework;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;
using Router.Tests.Support;

namespace Router.Tests.EndToEnd;

/// <summary>
/// Graceful shutdown of the real router process: SIGTERM stops the listeners, lets in-flight requests finish (each
/// answered with <c>Connection: close</c>), closes idle keep-alive connections and exits 0 within the drain timeout.
/// </summary>
public sealed partial class DrainTests
{
    private const int SigTerm = 15;

    [Test]
    public async Task Sigterm_WithRequestsInFlight_FinishesThemWithConnectionClose_RefusesNewConnections_AndExitsZero()
    {
        await using var upstream = await TestUpstream.StartAsync("slow");
        using var dir = new ConfigDir(upstream);
        await using var router = await RouterProcess.StartAsync(["--config", dir.ConfigPath, "--drain-timeout-ms", "5000"]);

        // 20 keep-alive connections that each served a request, then send a long one; 3 more stay idle.
        var busy = new List<RawHttpClient>();
        var idle = new List<RawHttpClient>();
        try
        {
            for (var i = 0; i < 23; i++)
            {
                var client = await RawHttpClient.ConnectAsync(router.EndPoint);
                await client.SendAsync("GET /warm HTTP/1.1\r\nHost: x\r\n\r\n");
                var warm = await client.ReadResponseAsync();
                Assert.That(warm.StatusCode, Is.EqualTo(200));
                Assert.That(warm.Header("Connection"), Is.Not.EqualTo("close"), "keep-alive before shutdown");
                (i < 20 ? busy : idle).Add(client);
            }

            long before = upstream.Requests;
            var responses = busy.ConvertAll(async c =>
            {
                await c.SendAsync("GET /slow/3000 HTTP/1.1\r\nHost: x\r\n\r\n");
                return await c.ReadResponseAsync();
            });
            Assert.That(await Eventually.TrueAsync(() => upstream.Requests - before >= 20, TimeSpan.FromSeconds(5)), Is.True, "all 20 long requests reached the upstream");

            var watch = Stopwatch.StartNew();
            Signal(router, SigTerm);

            // The listener stops at once: new connections are refused while the long requests are still running.
            Assert.That(await Eventually.TrueAsync(() => !CanConnect(router), TimeSpan.FromSeconds(2)), Is.True, "new connections are refused");
            var refusedAfter = watch.Elapsed;
            foreach (var client in idle)
            {
                Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(2)), Is.True, "idle keep-alive connection closed");
            }

            var idleClosedAfter = watch.Elapsed;
            var results = await Task.WhenAll(responses);
            var lastResponseAfter = watch.Elapsed;
            var exitCode = await router.WaitForExitAsync(TimeSpan.FromSeconds(10));
            var exitedAfter = watch.Elapsed;
            TestContext.Out.WriteLine($"refused new connections after {refusedAfter.TotalMilliseconds:F0} ms, idle closed after {idleClosedAfter.TotalMilliseconds:F0} ms, " +
                $"last in-flight response after {lastResponseAfter.TotalMilliseconds:F0} ms, exited after {exitedAfter.TotalMilliseconds:F0} ms (drain timeout 5000 ms)");

            Assert.Multiple(() =>
            {
                Assert.That(refusedAfter, Is.LessThan(lastResponseAfter), "refused while requests were still in flight");
                Assert.That(results.Select(r => r.StatusCode), Is.All.EqualTo(200));
                Assert.That(results.Select(r => r.BodyText), Is.All.EqualTo("slow"));
                Assert.That(results.Select(r => r.Header("Connection")), Is.All.EqualTo("close"), "responses finished during the drain close their connection");
                Assert.That(exitCode, Is.Zero, router.Output);
                Assert.That(exitedAfter, Is.LessThan(TimeSpan.FromSeconds(5)), "exits as soon as the drain is done, before the timeout");
            });
            foreach (var client in busy)
            {
                Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(2)), Is.True, "connection closed after its last response");
            }
        }
        finally
        {
            busy.ForEach(c => c.Dispose());
            idle.ForEach(c => c.Dispose());
        }
    }

    [Test]
    public async Task Sigterm_WithRequestsOutlastingTheDrainTimeout_AbortsThemAndExitsZeroAtTheTimeout()
    {
        await using var upstream = await TestUpstream.StartAsync("slow");
        using var dir = new ConfigDir(upstream);
        await using var router = await RouterProcess.StartAsync(["--config", dir.ConfigPath, "--drain-timeout-ms", "1000"]);
        var clients = new List<RawHttpClient>();
        try
        {
            for (var i = 0; i < 5; i++)
            {
                var client = await RawHttpClient.ConnectAsync(router.EndPoint);
                await client.SendAsync("GET /slow/20000 HTTP/1.1\r\nHost: x\r\n\r\n");
                clients.Add(client);
            }

            Assert.That(await Eventually.TrueAsync(() => upstream.Requests >= 5, TimeSpan.FromSeconds(5)), Is.True, "the long requests reached the upstream");

            var watch = Stopwatch.StartNew();
            Signal(router, SigTerm);
            var exitCode = await router.WaitForExitAsync(TimeSpan.FromSeconds(10));
            var exitedAfter = watch.Elapsed;
            TestContext.Out.WriteLine($"exited after {exitedAfter.TotalMilliseconds:F0} ms (drain timeout 1000 ms)");

            Assert.Multiple(() =>
            {
                Assert.That(exitCode, Is.Zero, router.Output);
                Assert.That(exitedAfter, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(900)), "waited for the drain timeout");
                Assert.That(exitedAfter, Is.LessThan(TimeSpan.FromSeconds(3)), "did not wait for the requests beyond the timeout");
            });
            foreach (var client in clients)
            {
                Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(2)), Is.True, "unfinished request's connection is closed");
            }
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }
    }

    // kill(2) directly: spawning kill(1) can take seconds on a loaded machine, longer than the requests in flight.
    private static void Signal(RouterProcess router, int signal) =>
        Assert.That(Kill(router.Pid, signal), Is.Zero, "kill(2) failed: errno " + Marshal.GetLastPInvokeError());

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    private static bool CanConnect(RouterProcess router)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Connect(router.EndPoint);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>A temp directory holding a config that routes everything to one upstream.</summary>
    private sealed class ConfigDir : IDisposable
    {
        private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("router-drain-");

        public ConfigDir(TestUpstream upstream)
        {
            ConfigPath = Path.Combine(_dir.FullName, "router.json");
            File.WriteAllText(ConfigPath, JsonSerializer.Serialize(new
            {
                routes = new[] { new { id = "r", match = new { pathPrefix = "/" }, cluster = "c" } },
                clusters = new[] { new { id = "c", destinations = new[] { new { address = upstream.Address } } } },
            }));
        }

        public string ConfigPath { get; }

        public void Dispose() => _dir.Delete(recursive: true);
    }
}
