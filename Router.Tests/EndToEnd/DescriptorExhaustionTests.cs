using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using NUnit.Framework;
using Router.Tests.Support;

namespace Router.Tests.EndToEnd;

/// <summary>
/// The router process and its descriptor limit: raised to the hard limit at start, and what happens when it runs out
/// anyway (its soft RLIMIT_NOFILE lowered under it with prlimit): accepting fails and is logged (then pauses briefly
/// instead of spinning), connections it already serves keep working, and accepting resumes once descriptors free up.
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

        var limits = File.ReadLines($"/proc/{router.Pid}/limits").First(line => line.StartsWith("Max open files", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries);
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
    /// ~40 in CI): now each accept checks that two descriptors are left, and gives the reserve back if not.
    /// </remarks>
    [TestCase("epoll")]
    [TestCase("sockets")]
    public async Task OutOfDescriptors_AcceptingPausesAndIsLogged_ServedConnectionsKeepWorking_AndAcceptingResumes(string transport)
    {
        RequirePrlimit();
        if (transport == "epoll" && RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            Assert.Ignore("the epoll transport runs on Linux x64 only");
        }

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

            // Leave the router 3 descriptors, then connect 20 more clients: the kernel completes every handshake
            // (the backlog), the router can take only a few.
            int open = Directory.GetFiles($"/proc/{router.Pid}/fd").Length;
            int limit = open + 3;
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

    private static void RequirePrlimit()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/usr/bin/prlimit"))
        {
            Assert.Ignore("needs Linux and prlimit (util-linux)");
        }
    }

    private static void SetDescriptorLimit(int pid, int soft)
    {
        // The hard limit stays; only the soft one drops (an unprivileged process may do that to its own children).
        var hard = File.ReadLines($"/proc/{pid}/limits").First(line => line.StartsWith("Max open files", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[4];
        using var prlimit = Process.Start(new ProcessStartInfo("/usr/bin/prlimit", ["--pid", pid.ToString(CultureInfo.InvariantCulture), $"--nofile={soft}:{hard}"])
        {
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        prlimit.WaitForExit();
        Assert.That(prlimit.ExitCode, Is.EqualTo(0), prlimit.StandardError.ReadToEnd());
    }
}
