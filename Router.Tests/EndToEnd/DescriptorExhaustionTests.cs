using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using NUnit.Framework;
using Router.Tests.Support;

namespace Router.Tests.EndToEnd;

/// <summary>
/// The router process and its descriptor limit: raised to the hard limit at start, and what happens when it runs out
/// anyway (its soft RLIMIT_NOFILE lowered under it with prlimit): accepting, or an upstream connect, finds it out and
/// the runtime gets the descriptor reserve (it must never be left without a descriptor for a thread), accepting pauses
/// instead of spinning, connections it already serves keep working, and all resumes once descriptors free up.
/// </summary>
public sealed class DescriptorExhaustionTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [Test]
    public async Task AtStart_TheSoftDescriptorLimitIsRaisedToTheHardOne_AndATooSmallLimitIsWarnedAbout()
    {
        RequirePrlimit();
        await using var upstream = await TestUpstream.StartAsync("T");

        // Started with a soft limit of 256 under a hard one of 1024: the default 10,000 connections do not fit either.
        await using var router = await RouterProcess.StartProxyingAsync(upstream.Address, launcher: ["/usr/bin/prlimit", "--nofile=256:1024"]);

        var limits = DescriptorLimits(router.Pid);
        Assert.Multiple(() =>
        {
            Assert.That(limits[3], Is.EqualTo("1024"), "soft limit");
            Assert.That(limits[4], Is.EqualTo("1024"), "hard limit");
            Assert.That(router.Output, Does.Contain("--max-connections 10000 can need 20256 descriptors but this process may open 1024"));
        });
    }

    /// <remarks>
    /// On both transports. CoreCLR aborts the process when it must start a thread and cannot open the pipe the thread
    /// needs (strace: <c>pipe2</c> fails with EMFILE, then "Out of memory."), so the router gives the runtime its
    /// descriptor reserve (DescriptorReserve) the moment it runs out. On the epoll loops the accept that takes the last
    /// descriptor is followed at once by one that fails (accept4 takes the descriptor before it looks at the backlog).
    /// On the runtime's sockets the accepted connections' continuations could start thread-pool threads before the next
    /// accept failed, and the process aborted there (8 runs in 40 on a 2-core machine before the headroom check, 1 in
    /// ~40 in CI): now each accept checks that four descriptors are left (a thread start holds up to three), and
    /// gives the reserve back if not.
    /// </remarks>
    [TestCase("epoll")]
    [TestCase("sockets")]
    public async Task OutOfDescriptors_AcceptingPausesAndIsLogged_ServedConnectionsKeepWorking_AndAcceptingResumes(string transport)
    {
        RequirePrlimitAnd(transport);

        await using var upstream = await TestUpstream.StartAsync("T");
        var waiting = new List<RawHttpClient>();
        RouterProcess? started = null;
        try
        {
            var environment = new Dictionary<string, string> { ["ROUTER_TRANSPORT"] = transport };
            await using var router = await RouterProcess.StartProxyingAsync(upstream.Address, environment);
            started = router;

            // A kept-alive client, and behind it a pooled upstream connection.
            using var kept = await RawHttpClient.ConnectAsync(router.EndPoint);
            await kept.SendAsync("GET /before HTTP/1.1\r\nHost: t\r\n\r\n");
            Assert.That((await kept.ReadResponseAsync()).BodyText, Is.EqualTo("T GET /before"));

            // Leave the router 6 descriptors, then connect 20 more clients: the kernel completes every handshake
            // (the backlog), the router can take only a few. (Once they close, the 8 of the reserve and 4 beside it
            // are free again.)
            int open = Directory.GetFiles($"/proc/{router.Pid}/fd").Length;
            int limit = open + 6;
            SetDescriptorLimit(router.Pid, limit);
            for (int i = 0; i < 20; i++)
            {
                waiting.Add(await RawHttpClient.ConnectAsync(router.EndPoint));
            }

            // Logged as a failed accept, or (runtime sockets) as the accept that took the last descriptors.
            Assert.That(await Eventually.TrueAsync(() => router.Output.Contains("TooManyOpenSockets", StringComparison.Ordinal), Timeout),
                Is.True, "running out is logged:\n" + router.Output);

            // While it waits, descriptors are left free for the runtime: it aborts the process ("Out of memory.") when it
            // must start a thread and cannot open the thread's pipe, as this test once saw happen.
            Assert.That(await Eventually.TrueAsync(() => limit - Directory.GetFiles($"/proc/{router.Pid}/fd").Length >= 4, Timeout),
                Is.True, "descriptors left free while out of them");

            // Still out of descriptors: the connection already served goes on, over its pooled upstream connection.
            await kept.SendAsync("GET /during HTTP/1.1\r\nHost: t\r\n\r\n");
            var during = await kept.ReadResponseAsync();
            Assert.Multiple(() =>
            {
                Assert.That(during.StatusCode, Is.EqualTo(200));
                Assert.That(during.BodyText, Is.EqualTo("T GET /during"));
            });

            // The waiting clients give up; their descriptors come back, the backlog drains, and a newcomer is served.
            foreach (var client in waiting)
            {
                client.Dispose();
            }

            waiting.Clear();
            using var late = await RawHttpClient.ConnectAsync(router.EndPoint);
            await late.SendAsync("GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
            using var answered = new CancellationTokenSource(Timeout);
            var after = await late.ReadResponseAsync(cancellationToken: answered.Token);
            Assert.Multiple(() =>
            {
                Assert.That(after.StatusCode, Is.EqualTo(200));
                Assert.That(after.BodyText, Is.EqualTo("T GET /after"));
                Assert.That(router.HasExited, Is.False);
            });
        }
        catch (Exception) when (started is not null)
        {
            TestContext.Out.WriteLine("router output:\n" + started.Output);
            throw;
        }
        finally
        {
            foreach (var client in waiting)
            {
                client.Dispose();
            }
        }
    }

    /// <remarks>
    /// Out of descriptors with no accept failing: the client connection is already served when the limit drops to what
    /// the process has open, so the first to find out is the upstream connect's socket() (the epoll transport's own,
    /// or the runtime's). The client gets a 503 (the runtime's socket threw past the request before, and the client
    /// got no answer; then a 502, as if the destination had refused), and the destination is not blamed: its breaker,
    /// which one failure opens, stays closed. The runtime gets the reserve (before, nothing gave it back and no
    /// descriptor was left free, so any thread the runtime started aborted the process), and once descriptors are free
    /// again the reserve comes back on its own and accepting resumes.
    /// </remarks>
    [TestCase("epoll")]
    [TestCase("sockets")]
    public async Task OutOfDescriptors_AnUpstreamConnectFails_TheClientGets503_TheDestinationIsNotBlamed_AndRequestsSucceedOnceTheLimitIsRaised(string transport)
    {
        RequirePrlimitAnd(transport);

        await using var upstream = await TestUpstream.StartAsync("T");
        var dir = Directory.CreateTempSubdirectory("router-descriptors-");
        RouterProcess? started = null;
        try
        {
            // /app and /warm go to the same upstream through two clusters, so two pools: /warm loads and runs the
            // forwarding code (a first request loads assemblies, which takes descriptors too) and leaves /app's pool
            // empty. Anything else is a 404 the router answers itself.
            var config = Path.Combine(dir.FullName, "router.json");
            await File.WriteAllTextAsync(config, System.Text.Json.JsonSerializer.Serialize(new
            {
                routes = new[]
                {
                    new { id = "app", match = new { pathPrefix = "/app" }, cluster = "c" },
                    new { id = "warm", match = new { pathPrefix = "/warm" }, cluster = "w" },
                },
                clusters = new object[]
                {
                    new
                    {
                        id = "c", destinations = new[] { new { address = upstream.Address } },
                        circuitBreaker = new { consecutiveFailures = 1, breakMs = 600_000 },
                    },
                    new { id = "w", destinations = new[] { new { address = upstream.Address } } },
                },
            }));
            // This test takes the router from descriptors free to none at once, and a thread the runtime starts
            // before anything has failed (so before the reserve is given back) aborts any router: the tiering worker,
            // ~100 ms after new code ran, or a pool worker added after the warm-up requests (3 runs in 40). So no
            // tiered compilation, and a pool of two workers whatever the cores (a maximum under the minimum is
            // raised to it): no thread starts meanwhile.
            var environment = new Dictionary<string, string>
            {
                ["ROUTER_TRANSPORT"] = transport,
                ["DOTNET_TieredCompilation"] = "0",
                ["DOTNET_ThreadPool_ForceMinWorkerThreads"] = "2",
                ["DOTNET_ThreadPool_ForceMaxWorkerThreads"] = "2",
            };
            await using var router = await RouterProcess.StartAsync(["--config", config], environment: environment);
            started = router;

            // A kept-alive client the router has accepted and answered, and no upstream connection for /app.
            using var kept = await RawHttpClient.ConnectAsync(router.EndPoint);
            await kept.SendAsync("GET /warm HTTP/1.1\r\nHost: t\r\n\r\nGET /elsewhere HTTP/1.1\r\nHost: t\r\n\r\n");
            Assert.That((await kept.ReadResponseAsync()).BodyText, Is.EqualTo("T GET /warm"));
            Assert.That((await kept.ReadResponseAsync()).StatusCode, Is.EqualTo(404));

            // Not one descriptor left, even if the count caught some held only for a moment (a thread start holds
            // up to three): the request's upstream connect cannot get a socket.
            string soft = SoftDescriptorLimit(router.Pid);
            int limit = Directory.GetFiles($"/proc/{router.Pid}/fd").Length - 2;
            SetDescriptorLimit(router.Pid, limit);
            await kept.SendAsync("GET /app/during HTTP/1.1\r\nHost: t\r\n\r\n");
            using (var answered = new CancellationTokenSource(Timeout))
            {
                Assert.That((await kept.ReadResponseAsync(cancellationToken: answered.Token)).StatusCode, Is.EqualTo(503));
            }

            // The runtime has the reserve: descriptors are free for the threads it may start.
            Assert.That(await Eventually.TrueAsync(() => limit - Directory.GetFiles($"/proc/{router.Pid}/fd").Length >= 4, Timeout),
                Is.True, "descriptors left free while out of them");
            Assert.That(router.HasExited, Is.False, "the router is alive");

            // A newcomer meanwhile, then descriptors free up again: it is served, the kept client's next request goes
            // through, and so does a later client's (accepted only once the reserve is back).
            using var waiting = await RawHttpClient.ConnectAsync(router.EndPoint);
            await waiting.SendAsync("GET /app/waiting HTTP/1.1\r\nHost: t\r\n\r\n");
            SetDescriptorLimit(router.Pid, int.Parse(soft, CultureInfo.InvariantCulture));
            using var late = await RawHttpClient.ConnectAsync(router.EndPoint);
            await late.SendAsync("GET /app/late HTTP/1.1\r\nHost: t\r\n\r\n");
            await kept.SendAsync("GET /app/after HTTP/1.1\r\nHost: t\r\n\r\n");
            using var served = new CancellationTokenSource(Timeout);
            var afterWaiting = await waiting.ReadResponseAsync(cancellationToken: served.Token);
            var afterLate = await late.ReadResponseAsync(cancellationToken: served.Token);
            var afterKept = await kept.ReadResponseAsync(cancellationToken: served.Token);
            Assert.Multiple(() =>
            {
                Assert.That(afterWaiting.BodyText, Is.EqualTo("T GET /app/waiting"));
                Assert.That(afterLate.BodyText, Is.EqualTo("T GET /app/late"));
                Assert.That(afterKept.BodyText, Is.EqualTo("T GET /app/after"));
                Assert.That(router.HasExited, Is.False);
            });
        }
        catch (Exception) when (started is not null)
        {
            TestContext.Out.WriteLine("router output:\n" + started.Output);
            throw;
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static void RequirePrlimit()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/usr/bin/prlimit"))
        {
            Assert.Ignore("needs Linux and prlimit (util-linux)");
        }
    }

    private static void RequirePrlimitAnd(string transport)
    {
        RequirePrlimit();
        if (transport == "epoll" && RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            Assert.Ignore("the epoll transport runs on Linux x64 only");
        }
    }

    private static string[] DescriptorLimits(int pid) =>
        File.ReadLines($"/proc/{pid}/limits").First(line => line.StartsWith("Max open files", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries);

    private static string SoftDescriptorLimit(int pid) => DescriptorLimits(pid)[3];

    private static void SetDescriptorLimit(int pid, int soft)
    {
        // The hard limit stays; only the soft one moves (an unprivileged process may do that to its own children).
        var hard = DescriptorLimits(pid)[4];
        using var prlimit = Process.Start(new ProcessStartInfo("/usr/bin/prlimit", ["--pid", pid.ToString(CultureInfo.InvariantCulture), $"--nofile={soft}:{hard}"])
        {
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        prlimit.WaitForExit();
        Assert.That(prlimit.ExitCode, Is.EqualTo(0), prlimit.StandardError.ReadToEnd());
    }
}
