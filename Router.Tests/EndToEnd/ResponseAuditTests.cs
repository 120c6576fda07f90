using System.Net.Sockets;
using System.Text;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Core.Routing;
using Router.Net.Forwarding;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>
/// The response side end to end: what the router does with the heads, bodies and connections an upstream gives it.
/// The router in-process, a scripted upstream on loopback, raw clients that see bytes and closes as they happen.
/// </summary>
public sealed class ResponseAuditTests
{
    private static RouterConfig OneUpstream(ScriptedUpstream upstream, int? responseTimeoutMs = null) => new()
    {
        Routes = [Route("r", "c")],
        Clusters =
        [
            new ClusterConfig
            {
                Id = "c",
                Destinations = [new DestinationConfig { Address = upstream.Address }],
                ResponseTimeoutMs = responseTimeoutMs ?? 30000,
            },
        ],
    };

    /// <summary>An upstream that answers every request head on a connection with <paramref name="answer"/>(path), until the router closes it.</summary>
    private static ScriptedUpstream Answering(Func<string, string> answer) => new(async socket =>
    {
        while (true)
        {
            string head = await ScriptedUpstream.ReadHeadAsync(socket);
            if (head.Length == 0)
            {
                return;
            }

            await ScriptedUpstream.SendAsync(socket, answer(head.Split(' ')[1]));
        }
    });

    // ---- 4. Response head limits ----

    [TestCase(4096)]
    [TestCase(8192)]
    public async Task ResponseHead_OfCompactFields_JustUnderABufferSize_IsForwardedWhole(int size)
    {
        // "Name:value" (no space: optional whitespace) grows by a byte per field when rewritten as "Name: value".
        // A head whose size plus the rewrite's slack is exactly a buffer's size, with many such fields.
        var head = new StringBuilder("HTTP/1.1 200 OK\r\n");
        for (int i = 0; i < 98; i++)
        {
            head.Append("X-").Append(i.ToString("D2", System.Globalization.CultureInfo.InvariantCulture)).Append(":v\r\n");
        }

        const string Tail = "Content-Length:2\r\n\r\n";
        int pad = size - 64 - head.Length - "X-Pad:\r\n".Length - Tail.Length;
        head.Append("X-Pad:").Append('p', pad).Append("\r\n").Append(Tail);
        Assert.That(head.Length, Is.EqualTo(size - 64));
        await using var upstream = Answering(_ => head + "ok");
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(200));
        Assert.That(response.Header("X-97"), Is.EqualTo("v"));
        Assert.That(response.BodyText, Is.EqualTo("ok"));
    }
}
