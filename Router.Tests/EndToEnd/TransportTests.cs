using System.Net;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using NUnit.Framework;
using Router.Tests.Support;

namespace Router.Tests.EndToEnd;

/// <summary>
/// The router process on each plain-connection transport: its own epoll loops (the default on Linux x64) and the
/// runtime's sockets (<c>ROUTER_TRANSPORT=sockets</c>, and what every other platform runs). Everything else in the
/// suite runs on the default, so this keeps the other one honest end to end.
/// </summary>
public sealed class TransportTests
{
    [TestCase("epoll")]
    [TestCase("sockets")]
    public async Task RouterProcess_OnEachTransport_ServesKeepAlive_StreamsBodiesBothWays_AndReusesUpstreamConnections(string transport)
    {
        bool epollAvailable = OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;
        if (transport == "epoll" && !epollAvailable)
        {
            Assert.Ignore("the epoll transport runs on Linux x64 only");
        }

        await using var upstream = await TestUpstream.StartAsync("T");
        var environment = transport == "sockets" ? new Dictionary<string, string> { ["ROUTER_TRANSPORT"] = "sockets" } : null;
        await using var router = await RouterProcess.StartProxyingAsync(upstream.Address, environment);
        using var client = new HttpClient { BaseAddress = new Uri($"http://{router.EndPoint}/") };

        // Keep-alive requests from 8 concurrent callers.
        var callers = Enumerable.Range(0, 8).Select(caller => Task.Run(async () =>
        {
            for (int i = 0; i < 25; i++)
            {
                Assert.That(await client.GetStringAsync(new Uri($"/c{caller}/{i}", UriKind.Relative)), Is.EqualTo($"T GET /c{caller}/{i}"));
            }
        }));
        await Task.WhenAll(callers);

        // 8 MiB up and back through /echo, and 32 MiB down: bodies stream both ways intact.
        var upload = RandomNumberGenerator.GetBytes(8 * 1024 * 1024);
        using (var echoed = await client.PostAsync(new Uri("/echo", UriKind.Relative), new ByteArrayContent(upload)))
        {
            Assert.That(echoed.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That((await echoed.Content.ReadAsByteArrayAsync()).AsSpan().SequenceEqual(upload), Is.True, "echoed body");
        }

        // The loops start with the listener on epoll, and accept there: no accept thread.
        if (epollAvailable)
        {
            var threads = ThreadNames(router.Pid);
            Assert.Multiple(() =>
            {
                Assert.That(threads.Any(name => name.StartsWith("Router epoll", StringComparison.Ordinal)),
                    Is.EqualTo(transport == "epoll"), "epoll loop threads exist exactly when that transport is on");
                Assert.That(threads.Any(name => name.StartsWith("Router accept", StringComparison.Ordinal)),
                    Is.False, "on epoll a loop accepts: no listener has a thread of its own");
            });
        }

        var download = await client.GetByteArrayAsync(new Uri("/bytes/33554432", UriKind.Relative));
        Assert.Multiple(() =>
        {
            Assert.That(download, Has.Length.EqualTo(32 * 1024 * 1024));
            Assert.That(download.AsSpan().IndexOfAnyExcept((byte)'x'), Is.EqualTo(-1));

            // 202 requests over at most 8 client connections: upstream connections are pooled, not one per request.
            Assert.That(upstream.Requests, Is.EqualTo(202));
            Assert.That(upstream.AcceptedConnections, Is.LessThanOrEqualTo(10));
        });
    }

    private static List<string> ThreadNames(int pid)
    {
        var names = new List<string>();
        foreach (var task in Directory.GetDirectories($"/proc/{pid}/task"))
        {
            try
            {
                names.Add(File.ReadAllText(Path.Combine(task, "comm")).Trim());
            }
            catch (IOException)
            {
                // The thread ended while we looked.
            }
        }

        return names;
    }
}
