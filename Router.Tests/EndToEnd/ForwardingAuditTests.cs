using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Core.Routing;
using Router.Net.Forwarding;
using Router.Tests.Net.Tls;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>
/// Forwarding semantics (RFC 9110/9112) end to end: the router in-process, a scripted upstream on loopback that
/// produces exactly the bytes a case needs, raw clients that see framing and closes as they happen.
/// </summary>
public sealed class ForwardingAuditTests
{
    private static RouterConfig OneUpstream(ScriptedUpstream upstream, RetryConfig? retry = null) => new()
    {
        Routes = [Route("r", "c")],
        Clusters = [new ClusterConfig { Id = "c", Destinations = [new DestinationConfig { Address = upstream.Address }], Retry = retry }],
    };

    private static DestinationState Destination(RouterFixture router) => router.Host.Table.Current!.Clusters[0].Destinations[0];

    private static UpstreamPool Pool(RouterFixture router) => UpstreamPool.For(Destination(router));

    /// <summary>In-flight counts back to zero: no concurrency slot leaked.</summary>
    private static async Task AssertNothingInFlightAsync(RouterFixture router)
    {
        var destination = Destination(router);
        var cluster = router.Host.Table.Current!.Clusters[0];
        Assert.That(await Eventually.TrueAsync(() => Volatile.Read(ref destination.InFlight) == 0 && Volatile.Read(ref cluster.InFlight) == 0, TimeSpan.FromSeconds(5)),
            Is.True, "in-flight counts back to zero");
    }

    // ---- 1. Interim responses ----

    [Test]
    public async Task EarlyHintsAndAnUnasked100_AreRelayedToAnHttp11Client_ThenTheFinalResponse_OnAConnectionThatStaysUsable()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            while ((await ScriptedUpstream.ReadHeadAsync(socket)).Length > 0)
            {
                await ScriptedUpstream.SendAsync(socket,
                    "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" +
                    "HTTP/1.1 100 Continue\r\n\r\n" +
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        for (int i = 0; i < 2; i++)
        {
            await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            var hints = await client.ReadResponseAsync();
            Assert.That(hints.StatusCode, Is.EqualTo(103));
            Assert.That(hints.Header("Link"), Is.EqualTo("</style.css>; rel=preload"));
            Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(100));
            var final = await client.ReadResponseAsync();
            Assert.That(final.StatusCode, Is.EqualTo(200));
            Assert.That(final.BodyText, Is.EqualTo("ok"));
        }

        Assert.That(upstream.Accepted, Is.EqualTo(1), "the upstream connection was reused");
        await AssertNothingInFlightAsync(router);
    }

    [Test]
    public async Task InterimResponses_AreNotSentToAnHttp10Client()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket,
                "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            await ScriptedUpstream.ReadHeadAsync(socket);
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.0\r\nHost: x\r\n\r\n");
        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(200), "the first thing an HTTP/1.0 client sees is the final response");
        Assert.That(response.BodyText, Is.EqualTo("ok"));
    }

    // ---- 2. Responses without a body ----

    [Test]
    public async Task HeadAndNotModified_WithFramingHeaders_CarryNoBody_AndBothConnectionsStayInUse()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            while (true)
            {
                string head = await ScriptedUpstream.ReadHeadAsync(socket);
                if (head.Length == 0)
                {
                    return;
                }

                string response = head.Split(' ')[1] switch
                {
                    "/head-length" => "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
                    "/head-chunked" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                    "/not-modified" => "HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\nETag: \"v1\"\r\n\r\n",
                    "/no-content" => "HTTP/1.1 204 No Content\r\n\r\n",
                    _ => "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast",
                };
                await ScriptedUpstream.SendAsync(socket, response);
            }
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);

        await client.SendAsync("HEAD /head-length HTTP/1.1\r\nHost: x\r\n\r\n");
        var head = await client.ReadResponseAsync(headRequest: true);
        Assert.That(head.Header("Content-Length"), Is.EqualTo("1000"));
        await client.SendAsync("HEAD /head-chunked HTTP/1.1\r\nHost: x\r\n\r\n");
        var chunked = await client.ReadResponseAsync(headRequest: true);
        Assert.That(chunked.Header("Transfer-Encoding"), Is.EqualTo("chunked"));
        await client.SendAsync("GET /not-modified HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"v1\"\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(304));
        await client.SendAsync("GET /no-content HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(204));
        await client.SendAsync("GET /last HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("last"), "framing stayed in sync");
        Assert.That(upstream.Accepted, Is.EqualTo(1), "no body was awaited, the upstream connection stayed in use");
    }

    [Test]
    public async Task NoContentResponse_WithAStrayBody_NeverLeaksIntoTheNextResponse()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            while (true)
            {
                string head = await ScriptedUpstream.ReadHeadAsync(socket);
                if (head.Length == 0)
                {
                    return;
                }

                await ScriptedUpstream.SendAsync(socket, head.StartsWith("GET /stray", StringComparison.Ordinal)
                    ? "HTTP/1.1 204 No Content\r\nContent-Length: 40\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nBAD"
                    : "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood");
            }
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /stray HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(204));
        await client.SendAsync("GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        var next = await client.ReadResponseAsync();
        Assert.That(next.StatusCode, Is.EqualTo(200));
        Assert.That(next.BodyText, Is.EqualTo("good"));
    }

    // ---- 3. Bodies delimited by the upstream's close ----

    [TestCase("HTTP/1.1")]
    [TestCase("HTTP/1.0")]
    public async Task CloseDelimitedResponse_IsStreamedWhole_TheClientIsToldWhereItEnds_AndTheUpstreamConnectionIsNotPooled(string version)
    {
        const int size = 300_000;
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, version + " 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n");
            for (int sent = 0; sent < size; sent += 1000)
            {
                await socket.SendAsync(Enumerable.Repeat((byte)('a' + (sent / 1000 % 26)), 1000).ToArray(), SocketFlags.None);
            }

            socket.Shutdown(SocketShutdown.Send);
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(200));
        bool chunked = response.Header("Transfer-Encoding") == "chunked";
        Assert.That(chunked || response.Header("Connection") == "close", Is.True, "a 1.1 client is told where the body ends");
        Assert.That(response.Body.Length, Is.EqualTo(size));
        Assert.That(response.Body[^1], Is.EqualTo((byte)('a' + (299 % 26))));
        if (!chunked)
        {
            Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(5)), Is.True);
        }

        Assert.That(await Eventually.TrueAsync(() => Pool(router).OpenConnections == 0, TimeSpan.FromSeconds(5)), Is.True, "not pooled");
        await AssertNothingInFlightAsync(router);
    }

    [Test]
    public async Task CloseDelimitedResponse_WhoseUpstreamResetsMidBody_IsAbortedToTheClient_NotEndedCleanly()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\n\r\n" + new string('x', 50_000));
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        var (_, reset) = await ReadUntilClosedAsync(client.Socket);
        Assert.That(reset, Is.True, "a reset upstream must not look like the end of a close-delimited body");
        await AssertNothingInFlightAsync(router);
    }

    [Test]
    public async Task ChunkedResponse_ToAnHttp10Client_ArrivesAsItsDataAlone_EndedByTheClose_AndTheUpstreamConnectionIsReused()
    {
        // Chunked whatever the request's version (the router asks as HTTP/1.0), in two sends, with an extension and a trailer.
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            while (true)
            {
                string head = await ScriptedUpstream.ReadHeadAsync(socket);
                if (head.Length == 0)
                {
                    return;
                }

                await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n");
                if (!head.StartsWith("HEAD ", StringComparison.Ordinal))
                {
                    await ScriptedUpstream.SendAsync(socket, "5;part=1\r\nhello\r\n");
                    await ScriptedUpstream.SendAsync(socket, "7\r\n, world\r\n0\r\nX-Checksum: abc\r\n\r\n");
                }
            }
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));

        using (var old = await RawHttpClient.ConnectAsync(router.EndPoint))
        {
            await old.SendAsync("GET /old HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
            var response = await old.ReadResponseAsync();
            Assert.That(response.StatusCode, Is.EqualTo(200));
            Assert.That(response.Header("Transfer-Encoding"), Is.Null, "an HTTP/1.0 client cannot read chunked");
            Assert.That(response.Header("Content-Length"), Is.Null);
            Assert.That(response.Header("Connection"), Is.EqualTo("close"), "the close is what ends the body");
            Assert.That(response.BodyText, Is.EqualTo("hello, world"), "the data alone: no sizes, extensions or trailer");
            Assert.That(await old.IsClosedByServerAsync(TimeSpan.FromSeconds(5)), Is.True);
        }

        // The upstream's framing stayed in step: its connection serves the next request, chunked to a 1.1 client.
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /new HTTP/1.1\r\nHost: x\r\n\r\n");
        var next = await client.ReadResponseAsync();
        Assert.That(next.Header("Transfer-Encoding"), Is.EqualTo("chunked"));
        Assert.That(next.BodyText, Is.EqualTo("hello, world"));

        // A response without a body keeps its connection: a HEAD from an HTTP/1.0 client.
        using var head = await RawHttpClient.ConnectAsync(router.EndPoint);
        await head.SendAsync("HEAD /old HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
        var headResponse = await head.ReadResponseAsync(headRequest: true);
        Assert.That(headResponse.StatusCode, Is.EqualTo(200));
        Assert.That(headResponse.Header("Connection"), Is.EqualTo("keep-alive"));
        Assert.That(headResponse.Header("Transfer-Encoding"), Is.Null, "not even on a HEAD's answer to an HTTP/1.0 client");
        Assert.That(upstream.Accepted, Is.EqualTo(1), "one upstream connection served all three");
        await AssertNothingInFlightAsync(router);
    }

    [Test]
    public async Task GzipChunkedResponse_ToAnHttp10Client_Is502_ToAnHttp11Client_KeepsItsCodings()
    {
        // An upstream that answers with a transfer coding besides chunked even when asked as HTTP/1.0.
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            while (true)
            {
                string head = await ScriptedUpstream.ReadHeadAsync(socket);
                if (head.Length == 0)
                {
                    return;
                }

                await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nCODED\r\n0\r\n\r\n");
            }
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));

        using (var old = await RawHttpClient.ConnectAsync(router.EndPoint))
        {
            await old.SendAsync("GET /old HTTP/1.0\r\nHost: x\r\n\r\n");
            var response = await old.ReadResponseAsync();
            Assert.That(response.StatusCode, Is.EqualTo(502), "coded bytes must not reach a client that cannot know they are coded");
            Assert.That(response.BodyText, Does.Not.Contain("CODED"));
        }

        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /new HTTP/1.1\r\nHost: x\r\n\r\n");
        var next = await client.ReadResponseAsync();
        Assert.That(next.StatusCode, Is.EqualTo(200));
        Assert.That(next.Header("Transfer-Encoding"), Is.EqualTo("gzip, chunked"), "an HTTP/1.1 client can undo the codings itself");
        Assert.That(next.BodyText, Is.EqualTo("CODED"));
        await AssertNothingInFlightAsync(router);
    }

    [TestCase("HTTP/1.1 304 Not Modified\r\n\r\n", "GET", false)]
    [TestCase("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n", "HEAD", false)]
    [TestCase("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "GET", false)]
    [TestCase("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "GET", true)]
    public async Task BytesBeyondTheResponse_AreNeverReadAsAnotherClientsResponse(string response, string method, bool whileIdle)
    {
        // The upstream sends more than its response framed (a body on a 304 or HEAD answer, more than its
        // Content-Length), shaped as a second response: with the response, or later, while the connection sits in the
        // pool. Reused as it is, that connection would answer someone else's request with those bytes.
        const string Smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED";
        var firstAnswered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var straySent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int served = 0;
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            while (true)
            {
                string head = await ScriptedUpstream.ReadHeadAsync(socket);
                if (head.Length == 0)
                {
                    return;
                }

                if (Interlocked.Increment(ref served) > 1)
                {
                    await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nclean");
                    continue;
                }

                if (whileIdle)
                {
                    await ScriptedUpstream.SendAsync(socket, response);
                    await firstAnswered.Task;
                }

                await ScriptedUpstream.SendAsync(socket, whileIdle ? Smuggled : response + Smuggled);
                straySent.SetResult();
            }
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));

        using (var client = await RawHttpClient.ConnectAsync(router.EndPoint))
        {
            await client.SendAsync(method + " /first HTTP/1.1\r\nHost: x\r\n\r\n");
            var first = await client.ReadResponseAsync(headRequest: method == "HEAD");
            Assert.That(first.Head + first.BodyText, Does.Not.Contain("SMUGGLED"));
        }

        firstAnswered.SetResult();
        await straySent.Task; // on loopback the bytes are in the router's receive queue once the send returns
        using var other = await RawHttpClient.ConnectAsync(router.EndPoint);
        await other.SendAsync("GET /second HTTP/1.1\r\nHost: x\r\n\r\n");
        var second = await other.ReadResponseAsync();
        Assert.That(second.BodyText, Is.Not.EqualTo("SMUGGLED"), "another client's request answered with bytes the upstream sent beyond a response");
        Assert.That(second.StatusCode, Is.EqualTo(200));
        Assert.That(second.BodyText, Is.EqualTo("clean"));
        Assert.That(upstream.Accepted, Is.EqualTo(2), "the connection that sent more than its response was not reused");
        await AssertNothingInFlightAsync(router);
    }

    [TestCase("/public/../admin")]
    [TestCase("/public/%2e%2e/admin")]
    [TestCase("/public/.%2E/admin")]
    [TestCase("http://x/public/../admin")]
    [TestCase("/public/..;/admin")]
    public async Task DotSegments_CannotReachAPathNoRouteMatches_AndTheUpstreamGetsThePathThatWasRouted(string target)
    {
        // Only /public/ is routed. Matched by its raw prefix, "/public/../admin" would go up, and the upstream
        // would serve /admin.
        var heads = new List<string>();
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            while (true)
            {
                string head = await ScriptedUpstream.ReadHeadAsync(socket);
                if (head.Length == 0)
                {
                    return;
                }

                lock (heads)
                {
                    heads.Add(head);
                }

                await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        var config = new RouterConfig
        {
            Routes = [Route("public", "c", prefix: "/public/")],
            Clusters = [new ClusterConfig { Id = "c", Destinations = [new DestinationConfig { Address = upstream.Address }] }],
        };
        await using var router = RouterFixture.Start(config);
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync($"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(404), "/admin matches no route");

        await client.SendAsync("GET /public/a/./b/../c?next=/../x HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
        lock (heads)
        {
            Assert.That(heads, Has.Count.EqualTo(1), "nothing went up for the request no route matched");
            Assert.That(heads[0], Does.StartWith("GET /public/a/c?next=/../x HTTP/1.1\r\n"), "the path routed, the query as sent");
        }
    }

    [TestCase("HTTP/1.0", 4096)]
    [TestCase("HTTP/1.1", 4096)]
    [TestCase("HTTP/1.1", 8192)]
    public async Task RequestHead_OfCompactFields_AroundABufferSize_IsForwardedWhole(string version, int bufferSize)
    {
        // "Name:value" (no optional space) is rewritten "Name: value", a byte longer per field; with the lines the
        // router adds, heads of 100 such fields near a buffer's size overran the writer's span and the client got nothing.
        static string Head(string version, int size)
        {
            var head = new StringBuilder($"GET /{size} {version}\r\nHost:a\r\n");
            for (int i = 0; i < 98; i++)
            {
                head.Append("X-").Append(i.ToString("D2", System.Globalization.CultureInfo.InvariantCulture)).Append(":v\r\n");
            }

            head.Append("X-Pad:").Append('p', size - head.Length - "X-Pad:\r\n\r\n".Length).Append("\r\n\r\n");
            return head.ToString();
        }

        await using var upstream = new ScriptedUpstream(async socket =>
        {
            while (true)
            {
                string head = await ScriptedUpstream.ReadHeadAsync(socket);
                if (head.Length == 0)
                {
                    return;
                }

                string seen = head.Contains("\r\nX-97: v\r\n", StringComparison.Ordinal) ? "all" : "some";
                await ScriptedUpstream.SendAsync(socket, $"HTTP/1.1 200 OK\r\nContent-Length: {seen.Length}\r\n\r\n{seen}");
            }
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        for (int size = bufferSize - 300; size <= bufferSize; size++)
        {
            // HTTP/1.0 without keep-alive: a connection per request.
            using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
            await client.SendAsync(Head(version, size));
            var response = await client.ReadResponseAsync();
            Assert.That(response.StatusCode, Is.EqualTo(200), $"a head of {size} bytes");
            Assert.That(response.BodyText, Is.EqualTo("all"), $"a head of {size} bytes reached the upstream whole");
        }
    }

    // ---- 4. Upstream gone mid-body ----

    [Test]
    public async Task ChunkedResponse_CutBeforeItsLastChunk_CutsTheClientConnection_AndIsNotPooled()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
            socket.Shutdown(SocketShutdown.Send);
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That(async () => await client.ReadResponseAsync(),
            Throws.TypeOf<EndOfStreamException>().Or.TypeOf<SocketException>(), "never a complete-looking response");
        Assert.That(await Eventually.TrueAsync(() => Pool(router).OpenConnections == 0, TimeSpan.FromSeconds(5)), Is.True, "not pooled");
        await AssertNothingInFlightAsync(router);
    }

    [Test]
    public async Task ChunkedResponse_ToAnHttp10Client_CutBeforeItsLastChunk_IsReset_NeverEndedLikeAWholeBody()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
            socket.Shutdown(SocketShutdown.Send);
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.0\r\nHost: x\r\n\r\n");
        string head = await ScriptedUpstream.ReadHeadAsync(client.Socket);
        Assert.That(head, Does.StartWith("HTTP/1.1 200 ").And.Not.Contain("Transfer-Encoding"));

        // The client's close ends the body: a FIN here would make the first chunk look like all of it.
        var (_, reset) = await ReadUntilClosedAsync(client.Socket);
        Assert.That(reset, Is.True, "a cut body must not end like a whole one");
        Assert.That(await Eventually.TrueAsync(() => Pool(router).OpenConnections == 0, TimeSpan.FromSeconds(5)), Is.True, "not pooled");
        await AssertNothingInFlightAsync(router);
    }

    // ---- 5. Upstream answers before the whole request body ----

    [Test]
    public async Task EarlyAnswer_WhileTheClientUploads_ReachesTheClient_SaysClose_AndTheConnectionEnds()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n");

            // Closing with the body unread: the kernel resets the connection.
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n");
        using var stop = new CancellationTokenSource();
        var uploading = UploadUntilStoppedAsync(client.Socket, stop.Token);
        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(413));
        Assert.That(response.BodyText, Is.EqualTo("too big\n"));
        Assert.That(response.Header("Connection"), Is.EqualTo("close"), "the router is about to close: it says so");
        Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(10)), Is.True, "the unread body is never read as a next request");
        await stop.CancelAsync();
        await uploading;
        await AssertNothingInFlightAsync(router);
    }

    [Test]
    public async Task EarlyAnswer_FromATlsUpstreamThatClosesBeforeTakingTheBody_ReachesTheClient_Not502()
    {
        using var pki = new TestPki();
        using var certificate = pki.Issue("early", ["early.test"]);
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            // The answer must leave at once: Nagle could hold it behind the handshake's unacknowledged bytes, and the
            // close below would then throw it away in the upstream's own kernel (a 502 the router could not help).
            socket.NoDelay = true;
            await using var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
            await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = certificate });
            await ScriptedUpstream.ReadHeadAsync(tls);
            await tls.WriteAsync("HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n"u8.ToArray());

            // Closing with the body unread: the kernel resets the connection, and the router's next send fails.
        });
        var config = OneUpstream(upstream);
        var tlsCluster = config.Clusters[0] with { Tls = new UpstreamTlsConfig { ServerName = "early.test", CaFile = pki.CaFile } };
        await using var router = RouterFixture.Start(config with { Clusters = [tlsCluster] });

        // Whether the answer is taken before the failed send or the reset is handled is up to the scheduler (before,
        // one of the first few uploads got a 502 in every run): every one of several uploads must get the answer.
        for (int i = 0; i < 20; i++)
        {
            using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
            await client.SendAsync("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 64000000\r\n\r\n");
            using var stop = new CancellationTokenSource();
            var uploading = UploadUntilStoppedAsync(client.Socket, stop.Token);
            var response = await client.ReadResponseAsync();
            Assert.That(response.StatusCode, Is.EqualTo(413), $"upload {i}: the upstream's answer, not a 502 for the send that failed after it");
            Assert.That(response.BodyText, Is.EqualTo("too big\n"));
            Assert.That(response.Header("Connection"), Is.EqualTo("close"));
            await stop.CancelAsync();
            await uploading;

            // The client's FIN ends the router's lingering drain at once.
            client.Socket.Shutdown(SocketShutdown.Send);
            Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(10)), Is.True);
        }

        await AssertNothingInFlightAsync(router);
    }

    [TestCase(true, TestName = "EarlyAnswer_ThenTheUpstreamCloses_TheRouterDrainsTheUploadForAMoment_BeforeItCloses")]
    [TestCase(false, TestName = "EarlyAnswer_OnAKeptUpstreamConnection_TheRouterDrainsTheUploadForAMoment_BeforeItCloses")]
    public async Task EarlyAnswer_TheRouterLingers(bool upstreamCloses)
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n\r\ntoo big\n");
            if (!upstreamCloses)
            {
                await ReadUntilClosedAsync(socket);
            }
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n");
        var sent = new StrongBox<long>();
        var uploading = UploadCountingAsync(client.Socket, sent);
        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(413));
        long atAnswer = Volatile.Read(ref sent.Value);

        // The router says it is done (a FIN), then keeps reading what the client still sends for a moment: closing
        // with it unread would make the kernel send a reset, which can destroy the answer before a client reads it.
        Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(10)), Is.True, "a FIN");
        await uploading.WaitAsync(TimeSpan.FromSeconds(30));
        long drained = Volatile.Read(ref sent.Value) - atAnswer;
        Assert.That(drained, Is.GreaterThan(64L * 1024 * 1024), "accepted after the answer: more than any socket buffers hold");
        await AssertNothingInFlightAsync(router);
    }

    [Test]
    public async Task EarlyAnswer_FromAnUpstreamThatKeepsTheConnection_SaysClose_AndTheConnectionEnds()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nnope\n");
            await ScriptedUpstream.ReadHeadAsync(socket);
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + new string('b', 1000));
        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(401));
        Assert.That(response.Header("Connection"), Is.EqualTo("close"), "the router is about to close: it says so");
        Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(await Eventually.TrueAsync(() => Pool(router).OpenConnections == 0, TimeSpan.FromSeconds(5)), Is.True, "not pooled");
        await AssertNothingInFlightAsync(router);
    }

    [Test]
    public async Task ExpectContinue_AnsweredWithAFinalStatus_SaysClose_AndTheConnectionEnds()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nnope\n");
            await ScriptedUpstream.ReadHeadAsync(socket);
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n");
        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(401));
        Assert.That(response.Header("Connection"), Is.EqualTo("close"), "the body was never sent: the client must know the connection ends");
        Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(10)), Is.True);
        await AssertNothingInFlightAsync(router);
    }

    // ---- 6. Stale pooled upstream connections ----

    /// <summary>
    /// The first connection serves one request, then takes the next request's head and closes without a word, as an
    /// upstream whose keep-alive timeout fired just as the router reused the connection. Later connections serve.
    /// </summary>
    private static ScriptedUpstream StaleAfterOneRequest(List<string> heads)
    {
        int connections = 0;
        return new ScriptedUpstream(async socket =>
        {
            bool first = Interlocked.Increment(ref connections) == 1;
            for (int i = 0; ; i++)
            {
                string head = await ScriptedUpstream.ReadHeadAsync(socket);
                if (head.Length == 0)
                {
                    return;
                }

                lock (heads)
                {
                    heads.Add(head.Split("\r\n")[0]);
                }

                if (first && i == 1)
                {
                    return;
                }

                await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
    }

    [Test]
    public async Task StalePooledConnection_AGetIsRetriedOnANewConnection()
    {
        var heads = new List<string>();
        await using var upstream = StaleAfterOneRequest(heads);
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
        await client.SendAsync("GET /two HTTP/1.1\r\nHost: x\r\n\r\n");
        var second = await client.ReadResponseAsync();
        Assert.That(second.StatusCode, Is.EqualTo(200), "retried transparently");
        Assert.That(upstream.Accepted, Is.EqualTo(2));
    }

    [TestCase("POST", "")]
    [TestCase("POST", "Content-Length: 0\r\n")]
    [TestCase("PATCH", "")]
    public async Task StalePooledConnection_ANonIdempotentRequestThatWasSent_IsNotSentAgain(string method, string headers)
    {
        var heads = new List<string>();
        await using var upstream = StaleAfterOneRequest(heads);
        await using var router = RouterFixture.Start(OneUpstream(upstream, new RetryConfig { MaxAttempts = 3 }));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
        await client.SendAsync($"{method} /order HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
        var second = await client.ReadResponseAsync();
        Assert.That(second.StatusCode, Is.EqualTo(502), "the upstream may have acted on it: the router must not resend");
        lock (heads)
        {
            Assert.That(heads.Count(h => h.StartsWith(method + " /order", StringComparison.Ordinal)), Is.EqualTo(1), "sent once");
        }

        await AssertNothingInFlightAsync(router);
    }

    // ---- 7. Pipelining ----

    [Test]
    public async Task PipelinedRequests_OfEveryFraming_AreAnsweredInOrder()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            while (true)
            {
                string head = await ScriptedUpstream.ReadHeadAsync(socket);
                if (head.Length == 0)
                {
                    return;
                }

                string path = head.Split(' ')[1];
                if (head.Contains("Transfer-Encoding: chunked", StringComparison.Ordinal))
                {
                    await ReadExactAsync(socket, "0\r\n\r\n".Length);
                }

                if (head.Contains("Content-Length: 5", StringComparison.Ordinal))
                {
                    var body = await ReadExactAsync(socket, 5);
                    await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + Encoding.ASCII.GetString(body));
                    continue;
                }

                await ScriptedUpstream.SendAsync(socket, path switch
                {
                    "/head" => "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
                    "/304" => "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n",
                    "/hints" => "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhints",
                    "/chunked" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                    _ => "HTTP/1.1 200 OK\r\nContent-Length: " + path.Length + "\r\n\r\n" + path,
                });
            }
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync(
            "HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n" +
            "GET /304 HTTP/1.1\r\nHost: x\r\n\r\n" +
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
            "GET /hints HTTP/1.1\r\nHost: x\r\n\r\n" +
            "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n" +
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
            "GET /last HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync(headRequest: true)).Header("Content-Length"), Is.EqualTo("100"));
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(304));
        Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("hello"));
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(103));
        Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("hints"));
        Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("abc"));
        Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("/echo"));
        Assert.That((await client.ReadResponseAsync()).BodyText, Is.EqualTo("/last"));
        Assert.That(upstream.Accepted, Is.EqualTo(1));
    }

    // ---- 8. Connection: close ----

    [Test]
    public async Task UpstreamConnectionClose_KeepsTheClientConnection_AndTheUpstreamOneIsNotReused()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            socket.Shutdown(SocketShutdown.Send);
            await ScriptedUpstream.ReadHeadAsync(socket);
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        for (int i = 0; i < 3; i++)
        {
            await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            var response = await client.ReadResponseAsync();
            Assert.That(response.BodyText, Is.EqualTo("ok"));
            Assert.That(response.Header("Connection"), Is.Null, "the client's connection is the router's, and stays open");
        }

        Assert.That(upstream.Accepted, Is.EqualTo(3));
    }

    // ---- 9. Upgrade ----

    [Test]
    public async Task Tunnel_ClosedByTheUpstream_DeliversEveryByteToTheClient_ThenAFin()
    {
        // Small enough that the kernel's smallest socket buffers on the way hold all of it while the client reads
        // nothing (the upstream's send must complete first), large enough that the router still has bytes queued
        // for the client when it sees the upstream's FIN: a reset at that point would drop them.
        const int size = 192 * 1024;
        var upstreamDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n");
            await socket.SendAsync(new byte[size], SocketFlags.None);
            socket.Shutdown(SocketShutdown.Send);
            upstreamDone.SetResult();
            await ReadUntilClosedAsync(socket);
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        client.Socket.ReceiveBufferSize = 64 * 1024;
        await client.SendAsync("GET /tunnel HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n");

        // The head byte by byte: tunnel bytes after it stay in the socket for the count below.
        var switching = await ScriptedUpstream.ReadHeadAsync(client.Socket);
        Assert.That(switching, Does.StartWith("HTTP/1.1 101 "));

        // The client reads nothing until the upstream has sent everything and closed.
        await upstreamDone.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var (bytes, reset) = await ReadUntilClosedAsync(client.Socket);
        Assert.That(bytes, Is.EqualTo(size), "every byte the upstream sent");
        Assert.That(reset, Is.False, "the tunnel ends with a FIN");

        // The FIN was passed on as a half-close; the client's own close ends the tunnel.
        client.Socket.Shutdown(SocketShutdown.Send);
        await AssertNothingInFlightAsync(router);
    }

    [Test]
    public async Task Tunnel_ClosedByTheClient_DeliversEveryByteToTheUpstream_ThenAFin()
    {
        const int size = 8 * 1024 * 1024;
        var received = new TaskCompletionSource<(long Bytes, bool Reset)>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n");
            received.SetResult(await ReadUntilClosedAsync(socket));
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /tunnel HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(101));
        await client.SendAsync(new byte[size]);
        client.Socket.Shutdown(SocketShutdown.Send);
        var (bytes, reset) = await received.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.That(bytes, Is.EqualTo(size), "every byte the client sent");
        Assert.That(reset, Is.False, "the tunnel ends with a FIN");
        await AssertNothingInFlightAsync(router);
    }

    [Test]
    public async Task Tunnel_HalfClosedByTheUpstream_WhileTheClientNeverCloses_EndsAfterTheClustersIdleTimeout()
    {
        var upstreamSawClose = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n");
            socket.Shutdown(SocketShutdown.Send);
            await ReadUntilClosedAsync(socket);
            upstreamSawClose.SetResult();
        });
        var config = OneUpstream(upstream);
        config = config with { Clusters = [config.Clusters[0] with { IdleTimeoutMs = 500 }] };
        await using var router = RouterFixture.Start(config);
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /tunnel HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n");
        var switching = await ScriptedUpstream.ReadHeadAsync(client.Socket);
        Assert.That(switching, Does.StartWith("HTTP/1.1 101 "));

        // The upstream's FIN reaches the client as a half-close; the client keeps its own side open and silent.
        var (bytes, _) = await ReadUntilClosedAsync(client.Socket);
        Assert.That(bytes, Is.Zero);

        // Nobody closes the other direction, so the router must: the upstream sees its connection end.
        await upstreamSawClose.Task.WaitAsync(TimeSpan.FromSeconds(15));
        await AssertNothingInFlightAsync(router);
    }

    [TestCase("Connection: Upgrade\r\nUpgrade: test\r\n", true)]
    [TestCase("Connection: keep-alive, Upgrade, X-Trace\r\nUpgrade: test\r\nX-Trace: 1\r\n", true)]
    [TestCase("Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n", false)]
    public async Task Upgrade_ReachesTheUpstreamWhateverElseConnectionNames_ButH2cIsNeverTunnelled(string fields, bool tunnels)
    {
        // An upstream that switches whenever asked, h2c included (h2c smuggling: a raw HTTP/2 connection to the
        // upstream would be past the router's routing for every later request on it).
        var heads = new List<string>();
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            string head = await ScriptedUpstream.ReadHeadAsync(socket);
            lock (heads)
            {
                heads.Add(head);
            }

            var upgrade = System.Text.RegularExpressions.Regex.Match(head, "\r\nUpgrade: ([^\r]*)\r\n", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
            await ScriptedUpstream.SendAsync(socket, upgrade.Success
                ? $"HTTP/1.1 101 Switching Protocols\r\nUpgrade: {upgrade.Groups[1].Value}\r\nConnection: Upgrade, X-Trace\r\nX-Trace: up\r\n\r\n"
                : "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain");
            await ReadUntilClosedAsync(socket);
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /tunnel HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n");
        var response = await ScriptedUpstream.ReadHeadAsync(client.Socket);

        string sent;
        lock (heads)
        {
            sent = heads.Single();
        }

        TestContext.Out.WriteLine("upstream received:\n" + sent);
        Assert.That(sent, Does.Not.Contain("X-Trace").And.Not.Contain("HTTP2-Settings"), "what Connection names is hop-by-hop");
        if (tunnels)
        {
            Assert.That(sent, Does.Contain("\r\nUpgrade: test\r\n").And.Contain("\r\nConnection: upgrade\r\n"));
            Assert.That(response, Does.StartWith("HTTP/1.1 101 "));
            Assert.That(response, Does.Contain("\r\nUpgrade: test\r\n").And.Not.Contain("X-Trace"), "the client needs the protocol it switched to");
        }
        else
        {
            Assert.That(sent, Does.Not.Contain("h2c").And.Not.Contain("Upgrade:").And.Not.Contain("Connection: upgrade"));
            Assert.That(response, Does.StartWith("HTTP/1.1 200 "));
        }
    }

    [Test]
    public async Task SwitchingProtocols_TheClientDidNotAskFor_IsNotPassedOn()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n");
            await ReadUntilClosedAsync(socket);
        });
        await using var router = RouterFixture.Start(OneUpstream(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        var response = await client.ReadResponseAsync();
        Assert.That(response.StatusCode, Is.EqualTo(502), "a protocol switch nobody asked for is a bad gateway");
        await AssertNothingInFlightAsync(router);
    }

    // ---- helpers ----

    private static async Task<byte[]> ReadExactAsync(Socket socket, int count)
    {
        var buffer = new byte[count];
        int filled = 0;
        while (filled < count)
        {
            int n = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None);
            if (n == 0)
            {
                throw new EndOfStreamException();
            }

            filled += n;
        }

        return buffer;
    }

    /// <summary>Reads until the peer closes: how many bytes came, and whether the end was a reset rather than a FIN.</summary>
    private static async Task<(long Bytes, bool Reset)> ReadUntilClosedAsync(Socket socket)
    {
        var buffer = new byte[64 * 1024];
        long total = 0;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            int n;
            try
            {
                n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            }
            catch (SocketException)
            {
                return (total, true);
            }

            if (n == 0)
            {
                return (total, false);
            }

            total += n;
        }
    }

    /// <summary>Sends until the connection fails, counting the bytes the kernel took.</summary>
    private static async Task UploadCountingAsync(Socket socket, StrongBox<long> sent)
    {
        var chunk = new byte[64 * 1024];
        try
        {
            while (true)
            {
                int n = await socket.SendAsync(chunk, SocketFlags.None);
                Interlocked.Add(ref sent.Value, n);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }

    private static async Task UploadUntilStoppedAsync(Socket socket, CancellationToken stop)
    {
        var chunk = new byte[16 * 1024];
        try
        {
            while (!stop.IsCancellationRequested)
            {
                await socket.SendAsync(chunk, SocketFlags.None, stop);
            }
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }
}
