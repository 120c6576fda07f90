using System.Net.Sockets;
using System.Text;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Net.Http1;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>Request body size, body data rate and client connection limits, end to end.</summary>
public sealed class LimitsTests
{
    private static RouterConfig ConfigFor(RecordingUpstream upstream) => new()
    {
        Routes = [Route("r", "c")],
        Clusters = [new ClusterConfig { Id = "c", Destinations = [new DestinationConfig { Address = upstream.Address }] }],
    };

    [Test]
    public async Task ContentLengthOverBodyLimit_Is413_BeforeAnyUpstreamIsContacted()
    {
        await using var upstream = new RecordingUpstream();
        await using var router = RouterFixture.Start(ConfigFor(upstream), new HttpLimits { MaxRequestBodyBytes = 100 });
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);

        await client.SendAsync("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n");
        var response = await client.ReadResponseAsync();

        Assert.That(response.StatusCode, Is.EqualTo(413));
        Assert.That(response.Header("Connection"), Is.EqualTo("close"));
        Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That(upstream.Connections, Is.Empty, "the upstream was never contacted");
    }

    [Test]
    public async Task BodyAtTheLimit_IsForwarded()
    {
        await using var upstream = new RecordingUpstream();
        await using var router = RouterFixture.Start(ConfigFor(upstream), new HttpLimits { MaxRequestBodyBytes = 10 });
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);

        await client.SendAsync("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
        await client.SendAsync("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
        Assert.That(upstream.RequestCount, Is.EqualTo(2));
    }

    [Test]
    public async Task ChunkedBodyPassingTheLimit_Is413_AndTheChunkPastItIsNeverForwarded()
    {
        await using var upstream = new RecordingUpstream();
        await using var router = RouterFixture.Start(ConfigFor(upstream), new HttpLimits { MaxRequestBodyBytes = 10 });
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);

        await client.SendAsync("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
        Assert.That(await Eventually.TrueAsync(() => upstream.AllReceivedText.Contains("hello", StringComparison.Ordinal), TimeSpan.FromSeconds(5)), Is.True);
        await client.SendAsync("6\r\nworld!\r\n0\r\n\r\n");
        var response = await client.ReadResponseAsync();

        Assert.That(response.StatusCode, Is.EqualTo(413));
        Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That(await Eventually.TrueAsync(() => upstream.AllClosed, TimeSpan.FromSeconds(5)), Is.True, "the upstream connection is cut");
        Assert.That(upstream.AllReceivedText, Does.Not.Contain("world"));
        Assert.That(upstream.RequestCount, Is.Zero);
    }

    [Test]
    public async Task BodySlowerThanMinimumRate_Is408()
    {
        await using var upstream = new RecordingUpstream();
        var limits = new HttpLimits { MinRequestBodyDataRate = 240, MinRequestBodyDataRateGrace = TimeSpan.FromSeconds(1) };
        await using var router = RouterFixture.Start(ConfigFor(upstream), limits);
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);

        await client.SendAsync("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n");
        using var trickle = new CancellationTokenSource();
        var sender = Task.Run(async () =>
        {
            // 20 bytes/s: well under 240 bytes/s.
            while (!trickle.IsCancellationRequested)
            {
                try
                {
                    await client.Socket.SendAsync("x"u8.ToArray(), SocketFlags.None);
                    await Task.Delay(50, trickle.Token);
                }
                catch (Exception)
                {
                    return;
                }
            }
        });
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var response = await client.ReadResponseAsync();
        await trickle.CancelAsync();
        await sender;

        Assert.That(response.StatusCode, Is.EqualTo(408));
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)), "soon after the grace period");
        Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(5)), Is.True);
    }

    [Test]
    public async Task BodyAtAGoodRate_IsNotCutByTheMinimumRate()
    {
        await using var upstream = new RecordingUpstream();
        var limits = new HttpLimits { MinRequestBodyDataRate = 240, MinRequestBodyDataRateGrace = TimeSpan.FromMilliseconds(300) };
        await using var router = RouterFixture.Start(ConfigFor(upstream), limits);
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);

        // 10 x 100 bytes every 100 ms: ~1,000 bytes/s for a second, well over the minimum.
        await client.SendAsync("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n");
        for (int i = 0; i < 10; i++)
        {
            await client.SendAsync(new string('b', 100));
            await Task.Delay(100);
        }

        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
    }

    [Test]
    public async Task AtMaxClientConnections_AcceptingPauses_AndResumesWhenOneCloses()
    {
        await using var upstream = new RecordingUpstream();
        await using var router = RouterFixture.Start(ConfigFor(upstream), configure: o => o.MaxClientConnections = 2);
        using var first = await RawHttpClient.ConnectAsync(router.EndPoint);
        using var second = await RawHttpClient.ConnectAsync(router.EndPoint);
        await first.SendAsync("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        await second.SendAsync("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.That((await first.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
        Assert.That((await second.ReadResponseAsync()).StatusCode, Is.EqualTo(200));

        // The third connects (the kernel's backlog takes it) but is not accepted: no answer while two are open.
        using var third = await RawHttpClient.ConnectAsync(router.EndPoint);
        await third.SendAsync("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        using (var wait = new CancellationTokenSource(TimeSpan.FromMilliseconds(700)))
        {
            Assert.That(async () => await third.ReadResponseAsync(cancellationToken: wait.Token), Throws.InstanceOf<OperationCanceledException>());
        }

        Assert.That(router.Host.Runtime.Connections!.Open, Is.EqualTo(2));
        first.Dispose();
        var response = await third.ReadResponseAsync();

        Assert.That(response.StatusCode, Is.EqualTo(200), "accepted once a slot freed");
        Assert.That(upstream.RequestCount, Is.EqualTo(3));
    }

    [Test]
    public void Defaults_AreTheDocumentedOnes()
    {
        var limits = HttpLimits.Default;
        Assert.That(limits.MaxRequestBodyBytes, Is.Null);
        Assert.That(limits.MinRequestBodyDataRate, Is.EqualTo(240));
        Assert.That(limits.MinRequestBodyDataRateGrace, Is.EqualTo(TimeSpan.FromSeconds(5)));
        Assert.That(new Router.Net.Hosting.RouterHostOptions().MaxClientConnections, Is.EqualTo(10_000));
        Assert.That(Encoding.ASCII.GetString(Router.Net.Forwarding.HeadWriter.ReasonPhrase(413)), Is.EqualTo("Content Too Large"));
    }
}
