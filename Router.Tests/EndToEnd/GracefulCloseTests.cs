using System.Globalization;
using System.Net;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>
/// When the router closes a client connection after a response (the client asked for <c>Connection: close</c>), it
/// closes gracefully: a FIN after the response, never a reset, which could make the client's kernel drop response
/// bytes it has not yet read. Seen from the kernel's connection table: the router's side waits in FIN_WAIT2 for the
/// client's own close, where a reset would have removed it.
/// </summary>
public sealed class GracefulCloseTests
{
    private const string FinWait2 = "05";

    [Test]
    public async Task ConnectionClose_EndsWithAFin_NotAReset()
    {
        if (!File.Exists("/proc/net/tcp"))
        {
            Assert.Ignore("reads the Linux connection table");
        }

        await using var upstream = await TestUpstream.StartAsync("A");
        await using var router = RouterFixture.Start(new RouterConfig
        {
            Routes = [Route("r", "c")],
            Clusters = [Cluster("c", upstream)],
        });
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        var response = await client.ReadResponseAsync();
        Assert.That(response.BodyText, Is.EqualTo("A GET /bye"));
        Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(10)), Is.True, "the router closed after the response");

        int routerPort = router.EndPoint.Port;
        int clientPort = ((IPEndPoint)client.Socket.LocalEndPoint!).Port;
        Assert.That(await Eventually.TrueAsync(() => RouterSideState(routerPort, clientPort) == FinWait2, TimeSpan.FromSeconds(5)), Is.True,
            $"the router's side of the connection should wait in FIN_WAIT2 (05); it is {RouterSideState(routerPort, clientPort) ?? "gone (a reset)"}");
    }

    /// <summary>The TCP state (hex, as /proc/net/tcp shows it) of the IPv4 socket local:routerPort, remote:clientPort.</summary>
    private static string? RouterSideState(int routerPort, int clientPort)
    {
        string local = ":" + routerPort.ToString("X4", CultureInfo.InvariantCulture);
        string remote = ":" + clientPort.ToString("X4", CultureInfo.InvariantCulture);
        foreach (var line in File.ReadLines("/proc/net/tcp").Skip(1))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields[1].EndsWith(local, StringComparison.Ordinal) && fields[2].EndsWith(remote, StringComparison.Ordinal))
            {
                return fields[3];
            }
        }

        return null;
    }
}
