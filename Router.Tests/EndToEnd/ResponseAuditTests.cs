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
    private static readonly string[] LastChunkPieces = ["0", "\r", "\n", "\r", "\n"];
    private static readonly string[] UpstreamVia = ["1.1 cdn"];

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

    private static DestinationState Destination(RouterFixture router) => router.Host.Table.Current!.Clusters[0].Destinations[0];

    private static UpstreamPool Pool(RouterFixture router) => UpstreamPool.For(Destination(router));

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

    // ---- 1. Connection on responses ----

    [TestCase("Connection: close, X-Internal\r\n", false)]
    [TestCase("Connection: X-Internal, CLOSE\r\n", false)]
    [TestCase("Connection: X-Internal\r\nConnection: Close\r\n", false)]
    [TestCase("connection: x-internal ,  keep-alive\r\n", true)]
    public async Task ResponseConnection_NamedFieldsNeverReachTheClient_AndCloseAnywhereInItIsHonoured(string connection, bool reusable)
    {
        // The upstream keeps every connection open and answers whatever comes on it: only the router's reading of
        // Connection decides whether the second request reuses the first connection.
        await using var upstream = Answering(_ => "HTTP/1.1 200 OK\r\n" + connection + "X-Internal: secret\r\nX-Public: yes\r\nContent-Length: 2\r\n\r\nok");
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        for (int i = 0; i < 2; i++)
        {
            await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            var response = await client.ReadResponseAsync();
            Assert.That(response.StatusCode, Is.EqualTo(200));
            Assert.That(response.BodyText, Is.EqualTo("ok"));
            Assert.That(response.Header("X-Internal"), Is.Null, "a field Connection names is hop-by-hop");
            Assert.That(response.Header("X-Public"), Is.EqualTo("yes"));
            Assert.That(response.Header("Connection"), Is.Null, "the client's connection is the router's: it stays open");
        }

        Assert.That(upstream.Accepted, Is.EqualTo(reusable ? 1 : 2), reusable ? "reused" : "close was honoured: not reused");
    }

    // ---- 2. Keep-alive of HTTP/1.0 upstreams ----

    [TestCase("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false)]
    [TestCase("HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: Keep-Alive\r\n\r\nok", true)]
    [TestCase("HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, close\r\n\r\nok", false)]
    public async Task Http10Upstream_IsReusedOnlyWhenItSaysKeepAlive(string response, bool reusable)
    {
        await using var upstream = Answering(_ => response);
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        for (int i = 0; i < 2; i++)
        {
            await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("ok"));
        }

        Assert.That(upstream.Accepted, Is.EqualTo(reusable ? 1 : 2));
    }

    // ---- 3. Responses without a body ----

    [Test]
    public async Task NoContentResponse_LosesItsFramingHeaders_NotModifiedKeepsItsContentLength()
    {
        await using var upstream = Answering(path => path switch
        {
            "/204-length" => "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\nX-A: 1\r\n\r\n",
            "/204-chunked" => "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nX-A: 2\r\n\r\n",
            "/304" => "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"v\"\r\n\r\n",
            _ => "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast",
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);

        await client.SendAsync("GET /204-length HTTP/1.1\r\nHost: x\r\n\r\n");
        var noContent = await client.ReadResponseAsync();
        Assert.That(noContent.StatusCode, Is.EqualTo(204));
        Assert.That(noContent.Header("X-A"), Is.EqualTo("1"));
        Assert.That(noContent.Header("Content-Length"), Is.Null, "RFC 9110 §8.6: never a Content-Length on a 204");

        await client.SendAsync("GET /204-chunked HTTP/1.1\r\nHost: x\r\n\r\n");
        var chunked = await client.ReadResponseAsync();
        Assert.That(chunked.StatusCode, Is.EqualTo(204));
        Assert.That(chunked.Header("Transfer-Encoding"), Is.Null, "RFC 9112 §6.1: never a Transfer-Encoding on a 204");

        await client.SendAsync("GET /304 HTTP/1.1\r\nHost: x\r\n\r\n");
        var notModified = await client.ReadResponseAsync();
        Assert.That(notModified.StatusCode, Is.EqualTo(304));
        Assert.That(notModified.Header("Content-Length"), Is.EqualTo("10"), "RFC 9110 §8.6: a 304 may say the selected representation's length");

        await client.SendAsync("GET /last HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("last"), "framing stayed in step");
        Assert.That(upstream.Accepted, Is.EqualTo(1));
    }

    [Test]
    public async Task SeveralInterimResponses_AreRelayedInOrder_WithTheirFields_ButNoFraming()
    {
        await using var upstream = Answering(_ =>
            "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
            "HTTP/1.1 103 Early Hints\r\nLink: </b.js>; rel=preload\r\nContent-Length: 5\r\n\r\n" +
            "HTTP/1.1 103 Early Hints\r\nLink: </c.png>; rel=preload\r\n\r\n" +
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        foreach (var link in new[] { "</a.css>; rel=preload", "</b.js>; rel=preload", "</c.png>; rel=preload" })
        {
            var hints = await client.ReadResponseAsync();
            Assert.That(hints.StatusCode, Is.EqualTo(103));
            Assert.That(hints.Header("Link"), Is.EqualTo(link));
            Assert.That(hints.Header("Content-Length"), Is.Null, "RFC 9110 §8.6: never a Content-Length on a 1xx");
        }

        var final = await client.ReadResponseAsync();
        Assert.That(final.StatusCode, Is.EqualTo(200));
        Assert.That(final.BodyText, Is.EqualTo("ok"));
    }

    [Test]
    public async Task SwitchingProtocols_LosesAFramingHeader_AndTheTunnelCarriesBytes()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n");
            var ping = new byte[4];
            int got = 0;
            while (got < ping.Length)
            {
                got += await socket.ReceiveAsync(ping.AsMemory(got), SocketFlags.None);
            }

            await socket.SendAsync(ping, SocketFlags.None);
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /tunnel HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n");
        string head = await ScriptedUpstream.ReadHeadAsync(client.Socket);
        Assert.That(head, Does.StartWith("HTTP/1.1 101 ").And.Contain("\r\nUpgrade: test\r\n"));
        Assert.That(head, Does.Not.Contain("Content-Length"), "RFC 9110 §8.6: never a Content-Length on a 1xx");
        await client.SendAsync("ping");
        Assert.That(Encoding.ASCII.GetString(await client.ReadToEndAsync()), Is.EqualTo("ping"));
    }

    [Test]
    public async Task InterimResponse_AfterTheFinalOne_NeverReachesTheClient_AndTheConnectionIsNotReused()
    {
        int connections = 0;
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            bool first = Interlocked.Increment(ref connections) == 1;
            while ((await ScriptedUpstream.ReadHeadAsync(socket)).Length > 0)
            {
                await ScriptedUpstream.SendAsync(socket, first
                    ? "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </late>\r\n\r\n"
                    : "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nclean");
            }
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(204));
        await client.SendAsync("GET /second HTTP/1.1\r\nHost: x\r\n\r\n");
        var second = await client.ReadResponseAsync();
        Assert.That(second.StatusCode, Is.EqualTo(200), "the 1xx after a final response is no part of the next exchange");
        Assert.That(second.BodyText, Is.EqualTo("clean"));
        Assert.That(upstream.Accepted, Is.EqualTo(2));
    }

    // ---- 4. Response head limits ----

    [TestCase(33 * 1024, 1)]
    [TestCase(100, 101)]
    public async Task ResponseHead_OverTheLimits_Is502_AndItsConnectionIsClosed(int valueBytes, int fields)
    {
        var upstreamSawClose = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var head = new StringBuilder("HTTP/1.1 200 OK\r\n");
        for (int i = 0; i < fields; i++)
        {
            head.Append("X-F").Append(i).Append(": ").Append('v', valueBytes).Append("\r\n");
        }

        head.Append("Content-Length: 2\r\n\r\nok");
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, head.ToString());
            try
            {
                // Nothing more comes on this connection: the router's close (a FIN or a reset) ends the wait.
                await ScriptedUpstream.ReadHeadAsync(socket);
            }
            finally
            {
                upstreamSawClose.SetResult();
            }
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(502));
        Assert.That(response.Head, Does.Not.Contain("X-F0"));
        await upstreamSawClose.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(await Eventually.TrueAsync(() => Pool(router).OpenConnections == 0, TimeSpan.FromSeconds(5)), Is.True, "not pooled");
    }

    [Test]
    public async Task ResponseHead_WithALongLineAndManySetCookies_ArrivesWhole_InOrder()
    {
        var head = new StringBuilder("HTTP/1.1 200 OK\r\nX-Long: ").Append('L', 24 * 1024).Append("\r\n");
        for (int i = 0; i < 90; i++)
        {
            head.Append("Set-Cookie: c").Append(i).Append('=').Append(i).Append("; Path=/\r\n");
        }

        head.Append("Content-Length: 2\r\n\r\nok");
        await using var upstream = Answering(_ => head.ToString());
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(200));
        Assert.That(response.Header("X-Long"), Is.EqualTo(new string('L', 24 * 1024)));
        var cookies = response.Headers.Where(h => h.Key == "Set-Cookie").Select(h => h.Value).ToArray();
        Assert.That(cookies, Is.EqualTo(Enumerable.Range(0, 90).Select(i => $"c{i}={i}; Path=/").ToArray()), "every Set-Cookie line, in order");
        Assert.That(response.BodyText, Is.EqualTo("ok"));
    }

    [TestCase(4096)]
    [TestCase(8192)]
    public async Task ResponseHead_OfCompactFields_JustUnderABufferSize_IsForwardedWhole(int bufferSize)
    {
        // "Name:value" (no space: optional whitespace) grows by a byte per field when rewritten as "Name: value".
        // Heads of 100 such fields whose size plus the writer's slack falls on every side of a buffer's size.
        static string Head(int size)
        {
            var head = new StringBuilder("HTTP/1.1 200 OK\r\n");
            for (int i = 0; i < 98; i++)
            {
                head.Append("X-").Append(i.ToString("D2", System.Globalization.CultureInfo.InvariantCulture)).Append(":v\r\n");
            }

            const string Tail = "Content-Length:2\r\n\r\n";
            head.Append("X-Pad:").Append('p', size - head.Length - "X-Pad:\r\n".Length - Tail.Length).Append("\r\n").Append(Tail);
            return head.ToString();
        }

        await using var upstream = Answering(path => Head(int.Parse(path[1..], System.Globalization.CultureInfo.InvariantCulture)) + "ok");
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        for (int size = bufferSize - 160; size <= bufferSize; size += 4)
        {
            await client.SendAsync($"GET /{size} HTTP/1.1\r\nHost: x\r\n\r\n");
            var response = await client.ReadResponseAsync();
            Assert.That(response.StatusCode, Is.EqualTo(200), $"a head of {size} bytes");
            Assert.That(response.Header("X-97"), Is.EqualTo("v"));
            Assert.That(response.BodyText, Is.EqualTo("ok"));
        }
    }

    // ---- 5. Chunked framing ----

    [Test]
    public async Task ChunkedResponse_ToAnHttp11Client_KeepsExtensionsAndTrailersVerbatim()
    {
        const string Body = "0005;name=\"v\"\r\nhello\r\n6 ; a=b\r\n world\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n";
        await using var upstream = Answering(_ => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + Body);
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        string raw = Encoding.ASCII.GetString(await client.ReadToEndAsync());
        Assert.That(raw, Does.StartWith("HTTP/1.1 200 OK\r\n").And.Contain("\r\nTransfer-Encoding: chunked\r\n"));
        Assert.That(raw, Does.EndWith("\r\n\r\n" + Body), "the body as the upstream framed it, trailers included");
    }

    [Test]
    public async Task ChunkedResponse_WhoseLastChunkArrivesInPieces_EndsThere_AndTheConnectionIsReused()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            while ((await ScriptedUpstream.ReadHeadAsync(socket)).Length > 0)
            {
                await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n");
                foreach (var piece in LastChunkPieces)
                {
                    await Task.Delay(20); // pacing, so the pieces come in separate reads
                    await ScriptedUpstream.SendAsync(socket, piece);
                }
            }
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        for (int i = 0; i < 2; i++)
        {
            await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("ok"));
        }

        Assert.That(upstream.Accepted, Is.EqualTo(1));
    }

    // ---- 6. Upstream misbehaviour mid-exchange ----

    [Test]
    public async Task ResponseHead_InManyTinySegments_IsParsed()
    {
        const string Response = "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok";
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            socket.NoDelay = true;
            while ((await ScriptedUpstream.ReadHeadAsync(socket)).Length > 0)
            {
                foreach (char c in Response)
                {
                    await ScriptedUpstream.SendAsync(socket, c.ToString());
                    await Task.Delay(2); // pacing: a byte per read
                }
            }
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(200));
        Assert.That(response.Header("X-A"), Is.EqualTo("1"));
        Assert.That(response.BodyText, Is.EqualTo("ok"));
    }

    [Test]
    public async Task ResponseHead_TrickledPastTheResponseTimeout_Is504_AndItsConnectionIsClosed()
    {
        var upstreamSawClose = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            try
            {
                // A byte every 50 ms, forever: each read makes progress, the head never ends.
                await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\n");
                while (true)
                {
                    await ScriptedUpstream.SendAsync(socket, "X");
                    await Task.Delay(50);
                }
            }
            catch (SocketException)
            {
                upstreamSawClose.SetResult();
            }
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream, responseTimeoutMs: 500));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        var started = System.Diagnostics.Stopwatch.StartNew();
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(504), "the response timeout covers the whole head, not the wait for its first byte");
        Assert.That(started.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
        await upstreamSawClose.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Upload_LongerThanTheResponseTimeout_IsNotCut_TheTimeoutCountsFromItsLastByte(bool chunked)
    {
        // Ten pieces 150 ms apart against a 500 ms response timeout: the upstream takes each as it comes and answers
        // once it has the whole body, 1.5 s after the head.
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            var received = new StringBuilder();
            var buffer = new byte[4096];
            while (chunked ? !received.ToString().EndsWith("\r\n0\r\n\r\n", StringComparison.Ordinal) : received.Length < 1000)
            {
                int n = await socket.ReceiveAsync(buffer, SocketFlags.None);
                if (n == 0)
                {
                    return;
                }

                received.Append(Encoding.ASCII.GetString(buffer, 0, n));
            }

            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            await ScriptedUpstream.ReadHeadAsync(socket);
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream, responseTimeoutMs: 500));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("POST /upload HTTP/1.1\r\nHost: x\r\n" + (chunked ? "Transfer-Encoding: chunked\r\n\r\n" : "Content-Length: 1000\r\n\r\n"));
        for (int i = 0; i < 10; i++)
        {
            await Task.Delay(150); // pacing: the upload outlasts the response timeout
            await client.SendAsync(chunked ? "64\r\n" + new string('b', 100) + "\r\n" : new string('b', 100));
        }

        if (chunked)
        {
            await client.SendAsync("0\r\n\r\n");
        }

        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(200), "the upstream was taking the body all along: not a gateway timeout");
        Assert.That(response.BodyText, Is.EqualTo("ok"));
    }

    [Test]
    public async Task Upload_TheUpstreamStopsTaking_Is504AfterTheResponseTimeout()
    {
        // The upstream reads the head and nothing more: once the socket buffers are full no body byte goes up, and
        // the response timeout, counted from the last that did, ends the wait.
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await done.Task;
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream, responseTimeoutMs: 500));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n");
        using var stop = new CancellationTokenSource();
        var uploading = Task.Run(async () =>
        {
            var chunk = new byte[64 * 1024];
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    await client.Socket.SendAsync(chunk, SocketFlags.None, stop.Token);
                }
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        });
        var response = await client.ReadResponseAsync();
        await stop.CancelAsync();
        await uploading;
        done.SetResult();
        Assert.That(response.StatusCode, Is.EqualTo(504));
    }

    /// <summary>
    /// An idle pooled connection the upstream wrote to (a second response nobody asked for) or half-closed, on each
    /// plain transport (the runtime's sockets keep a receive loop on upstream connections; epoll peeks at the socket):
    /// the router process, so that ROUTER_TRANSPORT picks the transport.
    /// </summary>
    [TestCase("epoll", true)]
    [TestCase("epoll", false)]
    [TestCase("sockets", true)]
    [TestCase("sockets", false)]
    public async Task IdlePooledConnection_ThatSentBytesOrHalfClosed_IsNotReused_OnEachTransport(string transport, bool sendsBytes)
    {
        if (transport == "epoll" && !(OperatingSystem.IsLinux() && System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.X64))
        {
            Assert.Ignore("the epoll transport runs on Linux x64 only");
        }

        var firstAnswered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var misbehaved = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int connections = 0;
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            bool first = Interlocked.Increment(ref connections) == 1;
            while ((await ScriptedUpstream.ReadHeadAsync(socket)).Length > 0)
            {
                if (!first)
                {
                    await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nclean");
                    continue;
                }

                await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                await firstAnswered.Task;
                if (sendsBytes)
                {
                    await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED");
                }
                else
                {
                    socket.Shutdown(SocketShutdown.Send);
                }

                misbehaved.SetResult();
            }
        });
        var environment = transport == "sockets" ? new Dictionary<string, string> { ["ROUTER_TRANSPORT"] = "sockets" } : null;
        await using var router = await RouterProcess.StartProxyingAsync(upstream.Address, environment);

        using (var client = await RawHttpClient.ConnectAsync(router.EndPoint))
        {
            await client.SendAsync("GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("ok"));
        }

        firstAnswered.SetResult();
        await misbehaved.Task; // on loopback the bytes (or the FIN) are in the router's receive queue once this returns
        using var other = await RawHttpClient.ConnectAsync(router.EndPoint);
        await other.SendAsync("POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        var second = await other.ReadResponseAsync();
        Assert.That(second.StatusCode, Is.EqualTo(200), "a POST is not retried: it must not go on that connection at all");
        Assert.That(second.BodyText, Is.EqualTo("clean"));
        Assert.That(upstream.Accepted, Is.EqualTo(2));
    }

    // ---- Keep-Alive: timeout ----

    [TestCase("Keep-Alive: timeout=5, max=100\r\n", false, 1)]
    [TestCase("Keep-Alive: timeout=1\r\n", false, 1)]
    [TestCase("Keep-Alive: timeout=1\r\n", true, 2)]
    [TestCase("Keep-Alive: timeout=0\r\n", false, 2)]
    [TestCase("Keep-Alive: max=5, timeout = 0\r\nKeep-Alive: timeout=30\r\n", false, 2)]
    public async Task KeepAliveTimeout_TheUpstreamAnnounces_BoundsReuse(string keepAlive, bool waitForIt, int connections)
    {
        // The upstream never closes: only the router's reading of the announced timeout decides. A POST, which would
        // not be retried if the upstream closed the connection as it arrived.
        await using var upstream = Answering(_ => "HTTP/1.1 200 OK\r\n" + keepAlive + "Content-Length: 2\r\n\r\nok");
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        for (int i = 0; i < 2; i++)
        {
            if (i == 1 && waitForIt)
            {
                // Idle past the announced second (less the margin): the pool closes it without a rent.
                Assert.That(await Eventually.TrueAsync(() => Pool(router).OpenConnections == 0, TimeSpan.FromSeconds(5)), Is.True, "closed at the announced timeout");
            }

            await client.SendAsync("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
            var response = await client.ReadResponseAsync();
            Assert.That(response.BodyText, Is.EqualTo("ok"));
            Assert.That(response.Header("Keep-Alive"), Is.Null, "hop-by-hop");
        }

        Assert.That(upstream.Accepted, Is.EqualTo(connections));
    }

    // ---- 7. Via, Server, Date ----

    [Test]
    public async Task ResponseFields_ServerDateAndVia_PassThroughAsTheUpstreamSentThem_NoViaIsAdded()
    {
        await using var upstream = Answering(path => path == "/via"
            ? "HTTP/1.1 200 OK\r\nServer: origin/1.0\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nVia: 1.1 cdn\r\nContent-Length: 2\r\n\r\nok"
            : "HTTP/1.1 200 OK\r\nServer: origin/1.0\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\n\r\nok");
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        var plain = await client.ReadResponseAsync();
        Assert.That(plain.Header("Server"), Is.EqualTo("origin/1.0"));
        Assert.That(plain.Header("Date"), Is.EqualTo("Sun, 06 Nov 1994 08:49:37 GMT"));
        Assert.That(plain.Header("Via"), Is.Null);
        await client.SendAsync("GET /via HTTP/1.1\r\nHost: x\r\n\r\n");
        var via = await client.ReadResponseAsync();
        Assert.That(via.Headers.Where(h => h.Key == "Via").Select(h => h.Value).ToArray(), Is.EqualTo(UpstreamVia));
    }

    [Test]
    public async Task ResponseWithoutDate_GetsTheRoutersDate_AnInterimResponseDoesNot()
    {
        await using var upstream = Answering(_ => "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        var hints = await client.ReadResponseAsync();
        Assert.That(hints.StatusCode, Is.EqualTo(103));
        Assert.That(hints.Header("Date"), Is.Null);
        var response = await client.ReadResponseAsync();
        Assert.That(response.BodyText, Is.EqualTo("ok"));
        var dates = response.Headers.Where(h => h.Key == "Date").Select(h => h.Value).ToArray();
        Assert.That(dates, Has.Length.EqualTo(1), "RFC 9110 §6.6.1: a proxy with a clock adds the Date a response lacks");
        Assert.That(
            DateTimeOffset.TryParseExact(dates[0], "r", System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var date),
            Is.True, "an IMF-fixdate: " + dates[0]);
        Assert.That(date, Is.EqualTo(DateTimeOffset.UtcNow).Within(TimeSpan.FromSeconds(5)));
    }
}
