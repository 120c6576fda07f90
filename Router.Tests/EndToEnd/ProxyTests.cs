using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>The M1 data plane end to end: real Kestrel upstreams, the router in-process, raw TCP and HttpClient clients.</summary>
public sealed class ProxyTests
{
    private TestUpstream _a = null!;
    private TestUpstream _b = null!;

    [OneTimeSetUp]
    public async Task StartUpstreams()
    {
        _a = await TestUpstream.StartAsync("A");
        _b = await TestUpstream.StartAsync("B");
    }

    [OneTimeTearDown]
    public async Task StopUpstreams()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
    }

    private RouterConfig TwoClusterConfig() => new()
    {
        Routes =
        [
            Route("api", "a", "/api/", hosts: ["api.example.test"]),
            Route("api-v2", "b", "/api/v2/", hosts: ["api.example.test"]),
            Route("wild", "b", "/", hosts: ["*.shop.test"]),
            Route("any", "a", "/"),
        ],
        Clusters = [Cluster("a", _a), Cluster("b", _b)],
    };

    [Test]
    public async Task Request_IsRoutedByHostAndLongestPrefix()
    {
        await using var router = RouterFixture.Start(TwoClusterConfig());
        using var client = new HttpClient { BaseAddress = router.BaseUri };

        async Task<string> Get(string host, string path)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Host = host;
            using var response = await client.SendAsync(request);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), $"{host}{path}");
            return await response.Content.ReadAsStringAsync();
        }

        Assert.That(await Get("api.example.test", "/api/users"), Is.EqualTo("A GET /api/users"));
        Assert.That(await Get("API.Example.Test:8080", "/api/v2/users?x=1"), Is.EqualTo("B GET /api/v2/users?x=1"));
        Assert.That(await Get("www.shop.test", "/cart"), Is.EqualTo("B GET /cart"));
        Assert.That(await Get("other.test", "/anything"), Is.EqualTo("A GET /anything"));
    }

    [Test]
    public async Task Request_WithNoMatchingRoute_Gets404FromTheRouter()
    {
        var config = new RouterConfig
        {
            Routes = [Route("api", "a", "/api/", hosts: ["api.example.test"])],
            Clusters = [Cluster("a", _a)],
        };
        await using var router = RouterFixture.Start(config);
        long before = _a.Requests;
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /api/x HTTP/1.1\r\nHost: other.test\r\n\r\n");
        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(404));
        Assert.That(_a.Requests, Is.EqualTo(before), "no upstream saw the request");

        // The connection stays usable after a local 404.
        await client.SendAsync("GET /api/x HTTP/1.1\r\nHost: api.example.test\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
    }

    [Test]
    public async Task KeepAlive_ReusesOneConnectionOnEachSide()
    {
        await using var upstream = await TestUpstream.StartAsync("solo");
        var config = new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", upstream)] };
        await using var router = RouterFixture.Start(config);
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        for (int i = 0; i < 50; i++)
        {
            await client.SendAsync($"GET /n/{i} HTTP/1.1\r\nHost: x\r\n\r\n");
            var response = await client.ReadResponseAsync();
            Assert.That(response.BodyText, Is.EqualTo($"solo GET /n/{i}"));
        }

        Assert.That(upstream.AcceptedConnections, Is.EqualTo(1), "the router reused its upstream connection");
        Assert.That(upstream.Requests, Is.EqualTo(50));
    }

    [Test]
    public async Task PipelinedRequests_AreAnsweredInOrder()
    {
        await using var router = RouterFixture.Start(TwoClusterConfig());
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync(
            "GET /first HTTP/1.1\r\nHost: x\r\n\r\n" +
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
            "GET /slow/100 HTTP/1.1\r\nHost: x\r\n\r\n" +
            "GET /last HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("A GET /first"));
        Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("hello"));
        Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("slow"));
        Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("A GET /last"));
    }

    [Test]
    public async Task ChunkedRequestAndResponse_StreamThrough()
    {
        await using var router = RouterFixture.Start(TwoClusterConfig());
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n");
        var echoed = await client.ReadResponseAsync();
        Assert.That(echoed.StatusCode, Is.EqualTo(200));
        Assert.That(echoed.BodyText, Is.EqualTo("hello world"));

        await client.SendAsync("GET /chunked/5 HTTP/1.1\r\nHost: x\r\n\r\n");
        var chunked = await client.ReadResponseAsync();
        Assert.That(chunked.Header("Transfer-Encoding"), Is.EqualTo("chunked"));
        Assert.That(chunked.BodyText, Is.EqualTo("chunk-0;chunk-1;chunk-2;chunk-3;chunk-4;"));
    }

    [Test]
    public async Task ForwardedRequest_HasHopByHopHeadersRemovedAndForwardingHeadersAdded()
    {
        await using var router = RouterFixture.Start(TwoClusterConfig());
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync(
            "GET /headers HTTP/1.1\r\nHost: api.example.test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n" +
            "Keep-Alive: timeout=5\r\nProxy-Authorization: x\r\nTE: trailers\r\nX-Forwarded-For: 10.9.9.9\r\nX-Kept: yes\r\n\r\n");
        var response = await client.ReadResponseAsync();
        var seen = response.BodyText;
        Assert.That(seen, Does.Contain("X-Kept: yes"));
        Assert.That(seen, Does.Contain("X-Forwarded-For: 10.9.9.9, 127.0.0.1"));
        Assert.That(seen, Does.Contain("X-Forwarded-Proto: http"));
        Assert.That(seen, Does.Contain("X-Forwarded-Host: api.example.test"));
        Assert.That(seen, Does.Contain("Via: 1.1 router"));
        Assert.That(seen, Does.Not.Contain("X-Secret"));
        Assert.That(seen, Does.Not.Contain("Keep-Alive"));
        Assert.That(seen, Does.Not.Contain("Proxy-Authorization"));
        Assert.That(seen, Does.Not.Contain("TE:"));
    }

    [Test]
    public async Task Http10Client_GetsItsConnectionClosedUnlessItAsksForKeepAlive()
    {
        await using var router = RouterFixture.Start(TwoClusterConfig());
        using (var client = await RawHttpClient.ConnectAsync(router.EndPoint))
        {
            await client.SendAsync("GET /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
            var response = await client.ReadResponseAsync();
            Assert.That(response.Header("Connection"), Is.EqualTo("keep-alive"));
            await client.SendAsync("GET /b HTTP/1.0\r\nHost: x\r\n\r\n");
            Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("A GET /b"));
            Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(5)), Is.True);
        }
    }

    [Test]
    public async Task HeadAndNoContentResponses_CarryNoBody()
    {
        await using var router = RouterFixture.Start(TwoClusterConfig());
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("HEAD /bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\n");
        var head = await client.ReadResponseAsync(headRequest: true);
        Assert.That(head.Header("Content-Length"), Is.EqualTo("1000"));
        await client.SendAsync("GET /status/204 HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(204));
        await client.SendAsync("GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("A GET /after"), "framing stayed in sync");
    }

    [Test]
    public async Task ExpectContinue_IsRelayedAndTheBodyFollows()
    {
        await using var router = RouterFixture.Start(TwoClusterConfig());
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
        var interim = await client.ReadResponseAsync();
        Assert.That(interim.StatusCode, Is.EqualTo(100));
        await client.SendAsync("ping");
        var final = await client.ReadResponseAsync();
        Assert.That(final.StatusCode, Is.EqualTo(200));
        Assert.That(final.BodyText, Is.EqualTo("ping"));
    }

    [Test]
    public async Task UnreachableUpstream_Gets502()
    {
        var dead = new TcpListener(IPAddress.Loopback, 0);
        dead.Start();
        int port = ((IPEndPoint)dead.LocalEndpoint).Port;
        dead.Stop();
        var config = new RouterConfig
        {
            Routes = [Route("r", "dead")],
            Clusters = [new ClusterConfig { Id = "dead", Destinations = [new DestinationConfig { Address = $"127.0.0.1:{port}" }] }],
        };
        await using var router = RouterFixture.Start(config);
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(502));
        Assert.That(response.Header("Content-Length"), Is.Not.Null, "a well-formed response");
    }

    [Test]
    public async Task SlowUpstream_Gets504AfterTheResponseTimeout()
    {
        var config = new RouterConfig
        {
            Routes = [Route("r", "slow")],
            Clusters = [new ClusterConfig { Id = "slow", Destinations = [new DestinationConfig { Address = _a.Address }], ResponseTimeoutMs = 300 }],
        };
        await using var router = RouterFixture.Start(config);
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        var started = DateTime.UtcNow;
        await client.SendAsync("GET /slow/5000 HTTP/1.1\r\nHost: x\r\n\r\n");
        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(504));
        Assert.That(DateTime.UtcNow - started, Is.LessThan(TimeSpan.FromSeconds(4)));
    }

    [Test]
    public async Task UpstreamThatClosesMidResponse_CutsTheClientConnection()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + new string('x', 100));
            socket.Shutdown(SocketShutdown.Both);
        });
        var config = new RouterConfig
        {
            Routes = [Route("r", "c")],
            Clusters = [new ClusterConfig { Id = "c", Destinations = [new DestinationConfig { Address = upstream.Address }] }],
        };
        await using var router = RouterFixture.Start(config);
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That(async () => await client.ReadResponseAsync(),
            Throws.TypeOf<EndOfStreamException>().Or.TypeOf<SocketException>(),
            "the client must see a truncated response, never a complete-looking one");
    }

    [Test]
    public async Task ClientThatDisconnectsMidBody_ReleasesBothConnections()
    {
        await using var upstream = await TestUpstream.StartAsync("sink");
        var config = new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", upstream)] };
        await using var router = RouterFixture.Start(config);
        using (var client = await RawHttpClient.ConnectAsync(router.EndPoint))
        {
            await client.SendAsync("POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n");
            await client.SendAsync(new byte[256 * 1024]);
            Assert.That(await Eventually.TrueAsync(() => upstream.AcceptedConnections == 1, TimeSpan.FromSeconds(5)), Is.True);
        }

        var destination = router.Host.Table.Current!.Clusters[0].Destinations[0];
        Assert.That(await Eventually.TrueAsync(() => router.Host.Runtime.OpenConnections == 0, TimeSpan.FromSeconds(5)), Is.True, "client connection released");
        Assert.That(await Eventually.TrueAsync(() => Volatile.Read(ref destination.InFlight) == 0, TimeSpan.FromSeconds(5)), Is.True, "in-flight released");
        var pool = (Router.Net.Forwarding.UpstreamPool)destination.Pool!;
        Assert.That(await Eventually.TrueAsync(() => pool.OpenConnections == 0, TimeSpan.FromSeconds(5)), Is.True, "the half-sent upstream connection was closed, not pooled");
    }

    [Test]
    public async Task WebSocketUpgrade_BecomesATwoWayTunnel()
    {
        await using var router = RouterFixture.Start(TwoClusterConfig());
        using var socket = new ClientWebSocket();
        await socket.ConnectAsync(new Uri($"ws://{router.EndPoint}/ws"), CancellationToken.None);
        for (int i = 0; i < 3; i++)
        {
            var message = Encoding.UTF8.GetBytes($"message {i}");
            await socket.SendAsync(message, WebSocketMessageType.Text, true, CancellationToken.None);
            var buffer = new byte[1024];
            var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
            Assert.That(Encoding.UTF8.GetString(buffer, 0, result.Count), Is.EqualTo($"message {i}"));
        }

        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        Assert.That(socket.State, Is.EqualTo(WebSocketState.Closed));
    }

    [Test]
    public async Task HttpClient_ConcurrentRequests_AllSucceedAndSpreadOverDestinations()
    {
        var config = new RouterConfig
        {
            Routes = [Route("r", "both")],
            Clusters = [new ClusterConfig { Id = "both", Destinations = [new DestinationConfig { Address = _a.Address }, new DestinationConfig { Address = _b.Address }] }],
        };
        await using var router = RouterFixture.Start(config);
        using var client = new HttpClient { BaseAddress = router.BaseUri };
        var bodies = await Task.WhenAll(Enumerable.Range(0, 200).Select(i => client.GetStringAsync(new Uri($"/item/{i}", UriKind.Relative))));
        Assert.That(bodies.Count(b => b.StartsWith("A ", StringComparison.Ordinal)), Is.GreaterThan(50));
        Assert.That(bodies.Count(b => b.StartsWith("B ", StringComparison.Ordinal)), Is.GreaterThan(50));
    }
}
