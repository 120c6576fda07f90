using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>
/// What an operator relies on: the access log under hostile input and at shutdown, signals during a drain, /ready
/// while draining, metrics across reloads, and the admin API's answers.
/// </summary>
public sealed partial class OperabilityAuditTests
{
    private const int SigHup = 1;
    private const int SigTerm = 15;

    [Test]
    public async Task AccessLog_WithNonUtf8BytesInTheTargetAndACutMultiByteCharacter_KeepsLoggingEveryRequest()
    {
        await using var upstream = await TestUpstream.StartAsync("A");
        var path = Path.Combine(Path.GetTempPath(), $"access-{Guid.NewGuid():N}.log");
        try
        {
            var router = RouterFixture.Start(
                new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", upstream)] },
                configure: o => o.AccessLogPath = path);
            using (var client = await RawHttpClient.ConnectAsync(router.EndPoint))
            {
                // obs-text in the target is accepted (as nginx does) but is not UTF-8; a long path is cut in the
                // middle of a two-byte character. (A backslash is refused in the path, so it is in the query.)
                var requests = new List<byte[]>
                {
                    Concat("GET /bad\xff\xfe\"q?\\ HTTP/1.1\r\nHost: x\r\n\r\n"),
                    Concat("GET /" + new string('a', 1018) + "\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n"),
                    Concat("GET /after HTTP/1.1\r\nHost: x\r\n\r\n"),
                };
                foreach (var request in requests)
                {
                    // Kestrel behind the router answers 400 to a path that is not UTF-8: the router forwards it.
                    await client.SendAsync(request);
                    Assert.That((await client.ReadResponseAsync()).StatusCode, Is.AnyOf(200, 400));
                }
            }

            // Shutting down flushes the log; it must not fail because of what a client sent.
            Assert.DoesNotThrowAsync(async () => await router.Host.StopAsync(TimeSpan.FromSeconds(1)));
            var lines = await File.ReadAllLinesAsync(path);
            Assert.That(lines, Has.Length.EqualTo(3), string.Join("\n", lines));
            var paths = lines.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("path").GetString()).ToArray();
            Assert.Multiple(() =>
            {
                Assert.That(paths[0], Is.EqualTo("/bad\ufffd\ufffd\"q?\\"), "invalid bytes become U+FFFD, the rest is kept");
                Assert.That(paths[1], Does.StartWith("/aaaa").And.Not.Contains("\u00e9"));
                Assert.That(paths[2], Is.EqualTo("/after"));
            });
        }
        finally
        {
            File.Delete(path);
        }

        static byte[] Concat(string latin1) => Encoding.Latin1.GetBytes(latin1);
    }

    [Test]
    public async Task AccessLog_RecordsRequestsTheParserRejected_AndHeaderTimeouts_OnceEach()
    {
        await using var upstream = await TestUpstream.StartAsync("A");
        var path = Path.Combine(Path.GetTempPath(), $"access-{Guid.NewGuid():N}.log");
        try
        {
            var router = RouterFixture.Start(
                new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", upstream)] },
                limits: new Router.Net.Http1.HttpLimits { HeaderTimeout = TimeSpan.FromMilliseconds(300) },
                configure: o => o.AccessLogPath = path);
            var sent = new[]
            {
                "GET /bare-lf HTTP/1.1\nHost: x\r\n\r\n",
                "GET /" + new string('a', 9 * 1024) + " HTTP/1.1\r\nHost: x\r\n\r\n",
                "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + new string('a', 40 * 1024) + "\r\n\r\n",
                "GET /slow-head HTTP/1.1\r\nHost: x\r\n",
            };
            var statuses = new List<int>();
            foreach (var request in sent)
            {
                using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
                await client.SendAsync(request);
                statuses.Add((await client.ReadResponseAsync()).StatusCode);
            }

            await router.Host.StopAsync(TimeSpan.FromSeconds(1));
            var logged = (await File.ReadAllLinesAsync(path)).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("status").GetInt32()).ToArray();
            Assert.That(statuses, Is.EqualTo((int[])[400, 414, 431, 408]));
            Assert.That(logged, Is.EquivalentTo(statuses), "each rejected request is logged once, with the status sent");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public async Task Drain_ADownloadOutlastingTheTimeout_IsCutAndStillInTheAccessLog()
    {
        await using var upstream = await TestUpstream.StartAsync("A");
        var path = Path.Combine(Path.GetTempPath(), $"access-{Guid.NewGuid():N}.log");
        try
        {
            var router = RouterFixture.Start(
                new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", upstream)] },
                configure: o => o.AccessLogPath = path);
            using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
            client.Socket.ReceiveBufferSize = 4096;

            // 1 GiB that the client does not read: the download is in progress when the drain starts.
            await client.SendAsync("GET /bytes/1073741824 HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.That(await Eventually.TrueAsync(() => upstream.Requests >= 1, TimeSpan.FromSeconds(5)), Is.True);
            var watch = Stopwatch.StartNew();
            await router.Host.StopAsync(TimeSpan.FromMilliseconds(500));
            Assert.That(watch.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(450)), "the download got the drain timeout");
            Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(5)) || await DrainedToEnd(client), Is.True, "cut at the timeout");

            var lines = await File.ReadAllLinesAsync(path);
            Assert.That(lines, Has.Length.EqualTo(1), "the cut request is logged once");
            var entry = JsonDocument.Parse(lines[0]).RootElement;
            Assert.Multiple(() =>
            {
                Assert.That(entry.GetProperty("path").GetString(), Is.EqualTo("/bytes/1073741824"));
                Assert.That(entry.GetProperty("status").GetInt32(), Is.EqualTo(200));
                Assert.That(entry.GetProperty("bytes").GetInt64(), Is.GreaterThan(0).And.LessThan(1L << 30));
            });
        }
        finally
        {
            File.Delete(path);
        }

        static async Task<bool> DrainedToEnd(RawHttpClient client)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await client.ReadToEndAsync(cts.Token);
            return true;
        }
    }

    [Test]
    public async Task Sighup_DuringTheDrain_DoesNotKillTheProcess_TheRequestInFlightFinishes()
    {
        await using var upstream = await TestUpstream.StartAsync("slow");
        await using var router = await RouterProcess.StartProxyingAsync(upstream.Address);
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /slow/2000 HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That(await Eventually.TrueAsync(() => upstream.Requests >= 1, TimeSpan.FromSeconds(5)), Is.True);

        Signal(router, SigTerm);
        Assert.That(await Eventually.TrueAsync(() => !CanConnect(router.EndPoint), TimeSpan.FromSeconds(2)), Is.True, "drain started");

        // A config reloader (or logrotate's postrotate) sends SIGHUP while the router drains.
        Signal(router, SigHup);

        RawResponse? response = null;
        try
        {
            response = await client.ReadResponseAsync();
        }
        catch (EndOfStreamException)
        {
        }

        var exitCode = await router.WaitForExitAsync(TimeSpan.FromSeconds(10));
        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.Zero, "killed by SIGHUP (129)?\n" + router.Output);
            Assert.That(response?.StatusCode, Is.EqualTo(200), "the request in flight is answered");
            Assert.That(response?.Header("Connection"), Is.EqualTo("close"));
        });
    }

    [Test]
    public async Task SecondSigterm_DuringTheDrain_EndsItAtOnce_AndStillExitsZeroThroughAnOrderlyStop()
    {
        await using var upstream = await TestUpstream.StartAsync("slow");
        await using var router = await RouterProcess.StartProxyingAsync(upstream.Address);
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /slow/20000 HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That(await Eventually.TrueAsync(() => upstream.Requests >= 1, TimeSpan.FromSeconds(5)), Is.True);

        Signal(router, SigTerm);
        Assert.That(await Eventually.TrueAsync(() => !CanConnect(router.EndPoint), TimeSpan.FromSeconds(2)), Is.True, "drain started");
        var watch = Stopwatch.StartNew();
        Signal(router, SigTerm);

        // The default drain timeout is 30 s: the second signal ends the drain now, as the timeout would.
        var exitCode = await router.WaitForExitAsync(TimeSpan.FromSeconds(10));
        var exitedAfter = watch.Elapsed;
        await Task.Delay(100); // the last lines of the process's output
        Assert.Multiple(async () =>
        {
            Assert.That(exitCode, Is.Zero, "killed by the second SIGTERM (143)?\n" + router.Output);
            Assert.That(exitedAfter, Is.LessThan(TimeSpan.FromSeconds(5)));
            Assert.That(router.Output, Does.Contain("Second shutdown signal").And.Contain("Stopped"));
            Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(2)), Is.True, "the request still in flight is cut");
        });
    }

    [Test]
    public async Task Sighup_ReopensTheAccessLog_SoLinesGoToTheNewFileAfterLogrotateRenamedTheOldOne()
    {
        var dir = Directory.CreateTempSubdirectory("router-accesslog-");
        try
        {
            var log = Path.Combine(dir.FullName, "access.log");
            var rotated = log + ".1";
            await using var router = await RouterProcess.StartAsync(["--demo", "--access-log", log]);
            using (var client = await RawHttpClient.ConnectAsync(router.EndPoint))
            {
                await client.SendAsync("GET /before-rotation HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
            }

            Assert.That(await Eventually.TrueAsync(() => File.Exists(log) && File.ReadAllText(log).Contains("/before-rotation", StringComparison.Ordinal), TimeSpan.FromSeconds(5)), Is.True);

            // What logrotate does without copytruncate: rename, create an empty file, then tell the process.
            File.Move(log, rotated);
            await File.WriteAllTextAsync(log, "");
            Signal(router, SigHup);
            Assert.That(await Eventually.TrueAsync(() => router.Output.Contains("Access log reopened", StringComparison.Ordinal), TimeSpan.FromSeconds(5)), Is.True, router.Output);

            using (var client = await RawHttpClient.ConnectAsync(router.EndPoint))
            {
                await client.SendAsync("GET /after-rotation HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
            }

            Assert.That(await Eventually.TrueAsync(() => File.ReadAllText(log).Contains("/after-rotation", StringComparison.Ordinal), TimeSpan.FromSeconds(5)), Is.True, "the new file gets the new lines");
            Assert.That(File.ReadAllText(rotated), Does.Not.Contain("/after-rotation"), "the rotated file gets no more");
            Assert.That(router.HasExited, Is.False, "SIGHUP does not stop the router");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Test]
    public async Task AccessLogOnStdout_KeepsStdoutToJsonLines_TheRoutersOwnLogGoesToStderr()
    {
        var listen = new IPEndPoint(IPAddress.Loopback, RouterProcess.FreePort());
        var admin = new IPEndPoint(IPAddress.Loopback, RouterProcess.FreePort());
        var info = new ProcessStartInfo(Path.Combine(RouterProcess.ProjectOutput("Router.Net"), "Router.Net"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "--demo", "--access-log", "-", "--listen", listen.ToString(), "--admin", admin.ToString() })
        {
            info.ArgumentList.Add(arg);
        }

        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        using var process = Process.Start(info)!;
        process.OutputDataReceived += (_, e) => { lock (stdout) { stdout.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (stderr) { stderr.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            Assert.That(await Eventually.TrueAsync(() => CanConnect(listen), TimeSpan.FromSeconds(20)), Is.True, "the router listens");
            using (var client = await RawHttpClient.ConnectAsync(listen))
            {
                await client.SendAsync("GET /logged HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
            }

            string Out() { lock (stdout) { return stdout.ToString(); } }
            Assert.That(await Eventually.TrueAsync(() => Out().Contains("/logged", StringComparison.Ordinal), TimeSpan.FromSeconds(5)), Is.True, "the access log line");
            Assert.That(Kill(process.Id, SigTerm), Is.Zero);
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(15));
            process.WaitForExit(); // flushes the redirected streams

            foreach (var line in Out().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                Assert.DoesNotThrow(() => JsonDocument.Parse(line).Dispose(), "stdout holds only JSON lines: " + line);
            }

            lock (stderr)
            {
                Assert.That(stderr.ToString(), Does.Contain("Stopped"), "the router's own log is on stderr");
            }
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
        }
    }

    [Test]
    public async Task Ready_Is503AndHealthz200_OnTheAdminPort_WhileTheProcessDrains()
    {
        await using var upstream = await TestUpstream.StartAsync("slow");
        await using var router = await RouterProcess.StartProxyingAsync(upstream.Address);
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /slow/2000 HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That(await Eventually.TrueAsync(() => upstream.Requests >= 1, TimeSpan.FromSeconds(5)), Is.True);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var readyUri = new Uri($"http://{router.AdminEndPoint}/ready");
        using (var before = await http.GetAsync(readyUri))
        {
            Assert.That(before.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }

        Signal(router, SigTerm);
        Assert.That(await Eventually.TrueAsync(() => !CanConnect(router.EndPoint), TimeSpan.FromSeconds(2)), Is.True, "drain started");
        using var ready = await http.GetAsync(readyUri);
        var readyBody = await ready.Content.ReadAsStringAsync();
        using var health = await http.GetAsync(new Uri($"http://{router.AdminEndPoint}/healthz"));
        Assert.Multiple(() =>
        {
            Assert.That((ready.StatusCode, readyBody), Is.EqualTo((HttpStatusCode.ServiceUnavailable, "draining\n")), router.Output);
            Assert.That(health.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        });
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
        Assert.That(await router.WaitForExitAsync(TimeSpan.FromSeconds(10)), Is.Zero);
    }

    [Test]
    public async Task Drain_IdleKeepAliveConnection_IsClosedWithAFin_NotAReset()
    {
        await using var upstream = await TestUpstream.StartAsync("A");
        var router = RouterFixture.Start(new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", upstream)] });
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /warm HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));

        var stop = router.Host.StopAsync(TimeSpan.FromSeconds(5));
        var buffer = new byte[16];
        int received;
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            // A FIN reads as the end of the stream; a reset throws ConnectionReset.
            received = await client.Socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
        }

        Assert.That(received, Is.Zero, "the idle connection ends with a FIN");
        await stop.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Test]
    public async Task KeepAliveTimeout_ClosesTheIdleConnectionWithAFin_NotAReset()
    {
        await using var upstream = await TestUpstream.StartAsync("A");
        await using var router = RouterFixture.Start(
            new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", upstream)] },
            new Router.Net.Http1.HttpLimits { KeepAliveTimeout = TimeSpan.FromMilliseconds(300) });
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /warm HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));

        var buffer = new byte[16];
        int received;
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            // A FIN reads as the end of the stream; a reset throws ConnectionReset.
            received = await client.Socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
        }

        Assert.That(received, Is.Zero, "the idle connection ends with a FIN");
    }

    [TestCase("", TestName = "Admin_AConnectionThatSendsNothing_IsClosedAfterTheKeepAliveTimeout")]
    [TestCase("GET /healthz HTTP/1.1\r\nHost: x\r\n", TestName = "Admin_AHeadThatNeverEnds_IsClosedAfterTheHeaderTimeout")]
    public async Task Admin_StalledClients_AreCut(string partial)
    {
        await using var upstream = await TestUpstream.StartAsync("A");
        await using var router = RouterFixture.Start(
            new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", upstream)] },
            new Router.Net.Http1.HttpLimits { KeepAliveTimeout = TimeSpan.FromMilliseconds(500), HeaderTimeout = TimeSpan.FromMilliseconds(500) });
        using var client = await RawHttpClient.ConnectAsync(router.Host.AdminEndPoint!);

        // A request first: the connection is live and kept alive.
        await client.SendAsync("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
        if (partial.Length > 0)
        {
            await client.SendAsync(partial);
        }

        Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(10)), Is.True, "the admin listener cut the stalled client");
    }

    [Test]
    public async Task Metrics_RouteAndClusterIdsWithQuotesBackslashesAndNewlines_AreEscapedInLabels()
    {
        await using var upstream = await TestUpstream.StartAsync("A");
        const string routeId = "we\"ird\\route\nid";
        const string clusterId = "c\\\"1";
        await using var router = RouterFixture.Start(new RouterConfig { Routes = [Route(routeId, clusterId)], Clusters = [Cluster(clusterId, upstream)] });
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));

        string text = "";
        Assert.That(await Eventually.TrueAsync(() => (text = router.AdminGetAsync("/metrics").GetAwaiter().GetResult()).Contains("router_requests_total{", StringComparison.Ordinal), TimeSpan.FromSeconds(5)), Is.True);
        Assert.DoesNotThrow(() => PrometheusText.Parse(text));
        Assert.That(text, Does.Contain("router_requests_total{route=\"we\\\"ird\\\\route\\nid\",cluster=\"c\\\\\\\"1\",code_class=\"2xx\"} 1\n"));
    }

    [Test]
    public async Task Metrics_AfterManyReloadsWithChangingIds_OnlyLiveRoutesAndClustersHaveSeries()
    {
        await using var upstream = await TestUpstream.StartAsync("A");
        await using var router = RouterFixture.Start(Generation(0));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        const int reloads = 30;
        for (int i = 0; i <= reloads; i++)
        {
            if (i > 0)
            {
                Assert.That(router.Host.Applier.Apply(Generation(i), "test").Applied, Is.True);
            }

            await client.SendAsync("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));
            await client.SendAsync("GET /dead HTTP/1.1\r\nHost: x\r\n\r\n");
            Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(502));
        }

        var samples = PrometheusText.Parse(await router.AdminGetAsync("/metrics"));
        var routes = samples.Where(s => s.Name.StartsWith("router_request", StringComparison.Ordinal) && s.Labels.ContainsKey("route")).Select(s => s.Labels["route"]).Distinct().Order().ToArray();
        var failing = samples.Where(s => s.Name == "router_upstream_failures_total").Select(s => s.Labels["cluster"]).Distinct().ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(routes, Is.EquivalentTo(new[] { $"dead-{reloads}", $"ok-{reloads}" }), "series of routes removed by a reload go");
            Assert.That(failing, Is.EquivalentTo(new[] { $"dead-{reloads}" }), "series of clusters removed by a reload go");
            Assert.That(samples.Value("router_requests_total", ("route", $"ok-{reloads}"), ("code_class", "2xx")), Is.EqualTo(1));
            Assert.That(samples.Value("router_upstream_failures_total", ("cluster", $"dead-{reloads}"), ("reason", "connect")), Is.EqualTo(1));
        });

        RouterConfig Generation(int i) => new()
        {
            Routes = [Route($"dead-{i}", $"dead-{i}", "/dead"), Route($"ok-{i}", $"ok-{i}", "/ok")],
            Clusters =
            [
                Cluster($"ok-{i}", upstream),
                new ClusterConfig { Id = $"dead-{i}", Destinations = [new DestinationConfig { Address = "127.0.0.1:1" }] },
            ],
        };
    }

    [Test]
    public async Task Admin_UnknownPathsAre404_WrongMethodsAre405WithAllow_OversizedHeadsAre431()
    {
        await using var upstream = await TestUpstream.StartAsync("A");
        await using var router = RouterFixture.Start(new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", upstream)] });

        async Task<RawResponse> Send(string request)
        {
            using var client = await RawHttpClient.ConnectAsync(router.AdminEndPoint);
            await client.SendAsync(request);
            return await client.ReadResponseAsync();
        }

        var unknown = await Send("GET /admin/nope HTTP/1.1\r\nHost: a\r\n\r\n");
        var deleteMetrics = await Send("DELETE /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
        var getReload = await Send("GET /admin/reload HTTP/1.1\r\nHost: a\r\n\r\n");
        var reloadWithoutFile = await Send("POST /admin/reload HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        var withQuery = await Send("GET /healthz?probe=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        var huge = await Send("GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: " + new string('a', 40 * 1024) + "\r\n\r\n");
        Assert.Multiple(() =>
        {
            Assert.That(unknown.StatusCode, Is.EqualTo(404));
            Assert.That((deleteMetrics.StatusCode, deleteMetrics.Header("Allow")), Is.EqualTo((405, "GET")), "RFC 9110 15.5.6: a 405 names the allowed methods");
            Assert.That((getReload.StatusCode, getReload.Header("Allow")), Is.EqualTo((405, "POST")));
            Assert.That(reloadWithoutFile.StatusCode, Is.EqualTo(409));
            Assert.That(withQuery.StatusCode, Is.EqualTo(200));
            Assert.That((huge.StatusCode, huge.Header("Connection")), Is.EqualTo((431, "close")));
        });
    }

    [Test]
    public async Task Admin_OverTheConnectionCap_NewConnectionsGet503AndAFin_OpenOnesKeepWorking_AndAClosedOneFreesASlot()
    {
        await using var upstream = await TestUpstream.StartAsync("A");
        await using var router = RouterFixture.Start(new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", upstream)] });
        var admin = router.AdminEndPoint;

        async Task<RawResponse> ReadyOnAFreshConnection()
        {
            using var client = await RawHttpClient.ConnectAsync(admin);
            await client.SendAsync("GET /ready HTTP/1.1\r\nHost: a\r\n\r\n");
            var response = await client.ReadResponseAsync();
            if (response.Header("Connection") == "close")
            {
                // A FIN reads as the end of the stream; a reset throws ConnectionReset.
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                Assert.That(await client.Socket.ReceiveAsync(new byte[16], SocketFlags.None, cts.Token), Is.Zero, "closed with a FIN after the answer");
            }

            return response;
        }

        // The cap's worth of idle connections; the listener accepts in connection order, so any later one is over it.
        var held = new List<RawHttpClient>();
        try
        {
            for (int i = 0; i < Router.Net.Admin.AdminServer.MaxConnections; i++)
            {
                held.Add(await RawHttpClient.ConnectAsync(admin));
            }

            using var silent = await RawHttpClient.ConnectAsync(admin);
            for (int i = 0; i < 3; i++)
            {
                var refused = await ReadyOnAFreshConnection();
                Assert.That(
                    (refused.StatusCode, refused.Header("Connection"), refused.Header("Retry-After"), refused.BodyText),
                    Is.EqualTo((503, "close", "1", "too many admin connections\n")));
            }

            // An over-cap connection that never sends a request is not held either: closed (FIN) after a short linger.
            using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
            {
                Assert.That(await silent.Socket.ReceiveAsync(new byte[16], SocketFlags.None, cts.Token), Is.Zero, "the silent extra connection ends with a FIN");
            }

            // The connections within the cap are served as before, and kept alive.
            foreach (var client in new[] { held[0], held[^1] })
            {
                await client.SendAsync("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
                var health = await client.ReadResponseAsync();
                Assert.That((health.StatusCode, health.Header("Connection")), Is.EqualTo((200, (string?)null)));
            }

            // The scrape, on a connection within the cap, counts the four turned away (three 503s, the silent one).
            await held[0].SendAsync("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
            var metrics = await held[0].ReadResponseAsync();
            var samples = PrometheusText.Parse(metrics.BodyText);
            Assert.Multiple(() =>
            {
                Assert.That(metrics.StatusCode, Is.EqualTo(200));
                Assert.That(samples.Value("router_admin_connections_refused_total"), Is.EqualTo(4));
                Assert.That(samples.Value("router_admin_connections"), Is.EqualTo(Router.Net.Admin.AdminServer.MaxConnections));
            });

            // A few leave: their slots go to new connections.
            for (int i = 0; i < 3; i++)
            {
                held[^1].Dispose();
                held.RemoveAt(held.Count - 1);
            }

            Assert.That(
                await Eventually.TrueAsync(() => ReadyOnAFreshConnection().GetAwaiter().GetResult().StatusCode == 200, TimeSpan.FromSeconds(10)),
                Is.True,
                "/ready answers on a new connection once some of the idle ones closed");
        }
        finally
        {
            foreach (var client in held)
            {
                client.Dispose();
            }
        }
    }

    private static void Signal(RouterProcess router, int signal) =>
        Assert.That(Kill(router.Pid, signal), Is.Zero, "kill(2) failed: errno " + Marshal.GetLastPInvokeError());

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    private static bool CanConnect(IPEndPoint endPoint)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Connect(endPoint);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
