using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using NUnit.Framework;
using Router.Tests.Support;

namespace Router.Tests.EndToEnd;

/// <summary>
/// The router process out of file descriptors (its soft RLIMIT_NOFILE lowered under it with prlimit), on each
/// transport: accepting fails and is logged (then pauses briefly instead of spinning), connections it already serves
/// keep working, and accepting resumes once descriptors free up.
/// </summary>
public sealed class DescriptorExhaustionTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [TestCase("epoll")]
    [TestCase("sockets")]
    public async Task OutOfDescriptors_AcceptFailsAndIsLogged_ServedConnectionsKeepWorking_AndAcceptingResumes(string transport)
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/usr/bin/prlimit"))
        {
            Assert.Ignore("needs Linux and prlimit (util-linux)");
        }

        if (transport == "epoll" && RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            Assert.Ignore("the epoll transport runs on Linux x64 only");
        }

        await using var upstream = await TestUpstream.StartAsync("T");
        var dir = Directory.CreateTempSubdirectory("router-fds-");
        var waiting = new List<RawHttpClient>();
        try
        {
            var config = Path.Combine(dir.FullName, "router.json");
            await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new
            {
                routes = new[] { new { id = "r", match = new { pathPrefix = "/" }, cluster = "c" } },
                clusters = new[] { new { id = "c", destinations = new[] { new { address = upstream.Address } } } },
            }));
            var environment = transport == "sockets" ? new Dictionary<string, string> { ["ROUTER_TRANSPORT"] = "sockets" } : null;
            await using var router = await RouterProcess.StartAsync(["--config", config], environment: environment);

            // A kept-alive client, and behind it a pooled upstream connection.
            using var kept = await RawHttpClient.ConnectAsync(router.EndPoint);
            await kept.SendAsync("GET /before HTTP/1.1\r\nHost: t\r\n\r\n");
            Assert.That((await kept.ReadResponseAsync()).BodyText, Is.EqualTo("T GET /before"));

            // Leave the router 3 descriptors, then connect 20 more clients: the kernel completes every handshake
            // (the backlog), the router can take only a few.
            int open = Directory.GetFiles($"/proc/{router.Pid}/fd").Length;
            SetDescriptorLimit(router.Pid, open + 3);
            for (int i = 0; i < 20; i++)
            {
                waiting.Add(await RawHttpClient.ConnectAsync(router.EndPoint));
            }

            Assert.That(await Eventually.TrueAsync(() => router.Output.Contains("TooManyOpenSockets", StringComparison.Ordinal), Timeout),
                Is.True, "the failed accept is logged:\n" + router.Output);

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
        finally
        {
            foreach (var client in waiting)
            {
                client.Dispose();
            }

            dir.Delete(recursive: true);
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
