using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Net.Hosting;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>
/// M2, atomic config hot-reload, end to end: file watcher, SIGHUP, POST /admin/reload, boot and `router validate`,
/// a swap under load, in-flight requests across a swap, and runtime state carried over or drained.
/// </summary>
public sealed class ReloadTests
{
    // A document with several kinds of error at once: an unknown cluster, a wrong type, an unknown field.
    private const string BrokenDocument = """
        {
          "routes": [ { "id": "r", "match": { "pathPrefix": "/" }, "cluster": "missing" } ],
          "clusters": [ { "id": "a", "destinations": [ { "address": "127.0.0.1:1" } ], "loadBalancing": 7 } ],
          "bogus": true
        }
        """;

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

    /// <summary>Every path to A, with B configured too (B's state carries over).</summary>
    private byte[] ToA() => ConfigLoader.Serialize(new RouterConfig
    {
        Routes = [Route("r", "a")],
        Clusters = [Cluster("a", _a), Cluster("b", _b)],
    });

    /// <summary>Every path to B; cluster a is gone, so A's pool drains.</summary>
    private byte[] ToB() => ConfigLoader.Serialize(new RouterConfig
    {
        Routes = [Route("r", "b")],
        Clusters = [Cluster("b", _b)],
    });

    private static string HashOf(byte[] json) => ConfigLoader.Load(json).Hash;

    private static IReadOnlyList<ConfigError> ErrorsOf(string document)
    {
        var errors = ConfigLoader.Load(Encoding.UTF8.GetBytes(document)).Errors;
        Assert.That(errors, Has.Count.GreaterThanOrEqualTo(3), "the broken document has several errors");
        return errors;
    }

    [Test]
    public async Task Reload_WithInvalidFile_KeepsLastKnownGood()
    {
        await using var router = FileRouter.Start(ToA());
        Assert.That(await router.GetBodyAsync("/x"), Is.EqualTo("A GET /x"));

        var rejected = await router.WriteAndWaitAsync(() => File.WriteAllText(router.FilePath, BrokenDocument), o => !o.Applied);
        var expected = ErrorsOf(BrokenDocument);
        Assert.That(rejected.Errors, Is.EqualTo(expected));
        Assert.That(await router.GetBodyAsync("/x"), Is.EqualTo("A GET /x"), "last-known-good keeps serving");

        using (var config = await router.AdminJsonAsync("/admin/config"))
        {
            var root = config.RootElement;
            Assert.That(root.GetProperty("hash").GetString(), Is.EqualTo(HashOf(ToA())));
            var lastError = root.GetProperty("lastError");
            Assert.That(lastError.GetProperty("source").GetString(), Is.EqualTo("file:" + router.FilePath));
            Assert.That(ReadErrors(lastError), Is.EqualTo(expected));
            Assert.That(ReadErrors(lastError).Select(e => e.Path), Does.Contain("$.routes[0].cluster"));
        }

        // A later good file is picked up without a restart.
        var applied = await router.WriteAndWaitAsync(() => File.WriteAllBytes(router.FilePath, ToB()), o => o.Applied);
        Assert.That(applied.Hash, Is.EqualTo(HashOf(ToB())));
        Assert.That(await router.GetBodyAsync("/x"), Is.EqualTo("B GET /x"));
        using (var config = await router.AdminJsonAsync("/admin/config"))
        {
            Assert.That(config.RootElement.GetProperty("hash").GetString(), Is.EqualTo(HashOf(ToB())));
            Assert.That(config.RootElement.GetProperty("generation").GetInt64(), Is.EqualTo(2));
        }
    }

    [Test]
    public async Task Reload_WhenFileDeleted_KeepsServing_AndRecoversWhenRecreated()
    {
        await using var router = FileRouter.Start(ToA());
        Assert.That(await router.GetBodyAsync("/x"), Is.EqualTo("A GET /x"));

        var rejected = await router.WriteAndWaitAsync(() => File.Delete(router.FilePath), o => !o.Applied);
        Assert.That(rejected.Errors, Has.Count.EqualTo(1));
        Assert.That(rejected.Errors[0].Path, Is.EqualTo("$"));
        Assert.That(await router.GetBodyAsync("/x"), Is.EqualTo("A GET /x"), "a deleted file leaves the live config serving");
        using (var config = await router.AdminJsonAsync("/admin/config"))
        {
            Assert.That(config.RootElement.GetProperty("hash").GetString(), Is.EqualTo(HashOf(ToA())));
            Assert.That(ReadErrors(config.RootElement.GetProperty("lastError"))[0].Message, Does.Contain(router.FilePath));
        }

        await router.WriteAndWaitAsync(() => File.WriteAllBytes(router.FilePath, ToB()), o => o.Applied);
        Assert.That(await router.GetBodyAsync("/x"), Is.EqualTo("B GET /x"));
    }

    [Test]
    public async Task AdminReload_Answers200WithTheNewGenerationAndHash_Or400WithEveryError()
    {
        // The watcher is not started: only POST /admin/reload reads the file.
        await using var router = FileRouter.Start(ToA(), watch: false);
        using var admin = new HttpClient { BaseAddress = new Uri($"http://{router.AdminEndPoint}/") };

        await File.WriteAllBytesAsync(router.FilePath, ToB());
        using (var response = await admin.PostAsync(new Uri("admin/reload", UriKind.Relative), null))
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.That(body.RootElement.GetProperty("applied").GetBoolean(), Is.True);
            Assert.That(body.RootElement.GetProperty("generation").GetInt64(), Is.EqualTo(2));
            Assert.That(body.RootElement.GetProperty("hash").GetString(), Is.EqualTo(HashOf(ToB())));
        }

        Assert.That(await router.GetBodyAsync("/x"), Is.EqualTo("B GET /x"));

        await File.WriteAllTextAsync(router.FilePath, BrokenDocument);
        using (var response = await admin.PostAsync(new Uri("admin/reload", UriKind.Relative), null))
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.That(body.RootElement.GetProperty("applied").GetBoolean(), Is.False);
            Assert.That(ReadErrors(body.RootElement), Is.EqualTo(ErrorsOf(BrokenDocument)));
        }

        Assert.That(await router.GetBodyAsync("/x"), Is.EqualTo("B GET /x"), "a rejected reload changes nothing");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Sighup_ReloadsTheConfigFile(bool underNohup)
    {
        // Under nohup the router inherits SIGHUP ignored, and must take it back to reload on it.
        // The router is given a symlink; the test edits the link's target, in another directory the watcher does
        // not see. So only SIGHUP can make the router read the new content.
        var dir = Directory.CreateTempSubdirectory("router-sighup-");
        try
        {
            var real = Directory.CreateDirectory(Path.Combine(dir.FullName, "real"));
            var watched = Directory.CreateDirectory(Path.Combine(dir.FullName, "watched"));
            var target = Path.Combine(real.FullName, "router.json");
            var link = Path.Combine(watched.FullName, "router.json");
            await File.WriteAllBytesAsync(target, ToA());
            File.CreateSymbolicLink(link, target);

            await using var router = await RouterProcess.StartAsync(["--config", link], launcher: underNohup ? ["nohup"] : null);
            using var admin = new HttpClient { BaseAddress = new Uri($"http://{router.AdminEndPoint}/") };
            using var client = new HttpClient { BaseAddress = new Uri($"http://{router.EndPoint}/") };
            Assert.That(await LiveHashAsync(admin), Is.EqualTo(HashOf(ToA())));
            Assert.That(await client.GetStringAsync(new Uri("/x", UriKind.Relative)), Is.EqualTo("A GET /x"));

            await File.WriteAllBytesAsync(target, ToB());
            router.Signal(1);
            string expected = HashOf(ToB());
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (await LiveHashAsync(admin) != expected)
            {
                Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "SIGHUP did not reload:\n" + router.Output);
                await Task.Delay(10);
            }

            Assert.That(await client.GetStringAsync(new Uri("/x", UriKind.Relative)), Is.EqualTo("B GET /x"));
            Assert.That(router.HasExited, Is.False, "SIGHUP does not stop the router");
            Assert.That(router.Output, underNohup ? Does.Contain("SIGHUP was inherited ignored") : Does.Not.Contain("SIGHUP was inherited ignored"), "the log says why a hangup reloads under nohup");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Test]
    public async Task Boot_WithInvalidFile_ExitsNonZeroAndPrintsEveryErrorWithItsPath()
    {
        var dir = Directory.CreateTempSubdirectory("router-boot-");
        try
        {
            var path = Path.Combine(dir.FullName, "router.json");
            await File.WriteAllTextAsync(path, BrokenDocument);
            await using var router = await RouterProcess.StartAsync(["--config", path], waitReady: false);
            int exitCode = await router.WaitForExitAsync(TimeSpan.FromSeconds(20));
            Assert.That(exitCode, Is.Not.Zero);
            foreach (var error in ErrorsOf(BrokenDocument))
            {
                Assert.That(
                    await Eventually.TrueAsync(() => router.Output.Contains($"{error.Path}: {error.Message}", StringComparison.Ordinal), TimeSpan.FromSeconds(5)),
                    Is.True,
                    $"'{error}' printed; output:\n{router.Output}");
            }

            // Nothing was live yet, so the log must not promise a last-known-good.
            Assert.That(router.Output, Does.Contain("no config is live yet"));
            Assert.That(router.Output, Does.Not.Contain("last-known-good keeps serving"));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Test]
    public async Task Validate_ExitsZeroForAValidFile_AndOneWithEveryErrorForAnInvalidOne()
    {
        var dir = Directory.CreateTempSubdirectory("router-validate-");
        try
        {
            var good = Path.Combine(dir.FullName, "good.json");
            var bad = Path.Combine(dir.FullName, "bad.json");
            await File.WriteAllBytesAsync(good, ToA());
            await File.WriteAllTextAsync(bad, BrokenDocument);

            var (goodExit, goodOutput) = await RunRouterAsync("validate", good);
            Assert.That(goodExit, Is.Zero, goodOutput);
            Assert.That(goodOutput, Does.Contain(HashOf(ToA())));

            var (badExit, badOutput) = await RunRouterAsync("validate", bad);
            Assert.That(badExit, Is.EqualTo(1), badOutput);
            foreach (var error in ErrorsOf(BrokenDocument))
            {
                Assert.That(badOutput, Does.Contain($"{error.Path}: {error.Message}"));
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Test]
    public async Task InFlightRequest_FinishesOnTheSnapshotItStartedWith()
    {
        await using var router = FileRouter.Start(ToA());
        long before = _a.Requests;
        using var slowClient = await RawHttpClient.ConnectAsync(router.EndPoint);
        await slowClient.SendAsync("GET /slow/3000 HTTP/1.1\r\nHost: x\r\n\r\n");
        var slow = slowClient.ReadResponseAsync();
        Assert.That(await Eventually.TrueAsync(() => _a.Requests > before, TimeSpan.FromSeconds(5)), Is.True, "the slow request reached A");

        // Config B drops cluster a: the in-flight request's destination is removed under it.
        await router.WriteAndWaitAsync(() => File.WriteAllBytes(router.FilePath, ToB()), o => o.Applied);
        Assert.That(slow.IsCompleted, Is.False, "the swap happened while the request was in flight");
        Assert.That(await router.GetBodyAsync("/next"), Is.EqualTo("B GET /next"), "the next request sees the new snapshot");

        var response = await slow;
        Assert.That(response.StatusCode, Is.EqualTo(200));
        Assert.That(response.Header("X-Upstream"), Is.EqualTo("A"));
        Assert.That(response.BodyText, Is.EqualTo("slow"));
    }

    [Test]
    public async Task Reload_KeepsPooledConnectionsOfUnchangedDestinations_AndClosesRemovedOnes()
    {
        // Own upstreams, so their connection counts belong to this test alone.
        await using var kept = await TestUpstream.StartAsync("C");
        await using var removed = await TestUpstream.StartAsync("D");
        byte[] Config(string otherPrefix, bool withD) => ConfigLoader.Serialize(new RouterConfig
        {
            Routes = withD ? [Route("c", "c"), Route("d", "d", otherPrefix)] : [Route("c", "c")],
            Clusters = withD ? [Cluster("c", kept), Cluster("d", removed)] : [Cluster("c", kept)],
        });

        await using var router = FileRouter.Start(Config("/d/", withD: true));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        async Task<string> Get(string path)
        {
            await client.SendAsync($"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            return (await client.ReadResponseAsync()).BodyText;
        }

        Assert.That(await Get("/x"), Is.EqualTo("C GET /x"));
        Assert.That(await Get("/d/x"), Is.EqualTo("D GET /d/x"));
        Assert.That(kept.AcceptedConnections, Is.EqualTo(1));
        Assert.That(removed.AcceptedConnections, Is.EqualTo(1));

        // A reload that only moves route d: both clusters are unchanged, so their pooled connections are reused.
        await router.WriteAndWaitAsync(() => File.WriteAllBytes(router.FilePath, Config("/other/", withD: true)), o => o.Applied);
        Assert.That(await Get("/x"), Is.EqualTo("C GET /x"));
        Assert.That(await Get("/other/x"), Is.EqualTo("D GET /other/x"));
        Assert.That(kept.AcceptedConnections, Is.EqualTo(1), "C's pooled connection survived the reload");
        Assert.That(removed.AcceptedConnections, Is.EqualTo(1), "D's pooled connection survived the reload");
        Assert.That(TcpTable.EstablishedTo(removed.EndPoint.Port), Is.EqualTo(1), "the router holds one pooled connection to D");

        // D removed: its pool drains and the router closes the connection; C keeps its own.
        await router.WriteAndWaitAsync(() => File.WriteAllBytes(router.FilePath, Config("/other/", withD: false)), o => o.Applied);
        Assert.That(
            await Eventually.TrueAsync(() => TcpTable.EstablishedTo(removed.EndPoint.Port) == 0, TimeSpan.FromSeconds(5)),
            Is.True,
            "the removed destination's pooled connection was closed");
        Assert.That(TcpTable.EstablishedTo(kept.EndPoint.Port), Is.EqualTo(1));
        Assert.That(await Get("/x"), Is.EqualTo("C GET /x"));
        Assert.That(kept.AcceptedConnections, Is.EqualTo(1));
        using var clusters = await router.AdminJsonAsync("/admin/clusters");
        var destinations = clusters.RootElement.GetProperty("clusters").EnumerateArray()
            .SelectMany(c => c.GetProperty("destinations").EnumerateArray())
            .ToDictionary(d => d.GetProperty("address").GetString()!, d => d.GetProperty("openConnections").GetInt32());
        Assert.That(destinations, Is.EqualTo(new Dictionary<string, int> { [kept.Address] = 1 }));
    }

    /// <summary>
    /// The M2 load test: a real router process, 8 keep-alive clients, and 100+ config rewrites (valid ones alternating
    /// A and B, interleaved with invalid ones written every way a file can change).
    /// </summary>
    [Test]
    public async Task Reload_UnderLoad_FailsNoRequest_AndServesOnlyConfigsThatCouldHaveBeenLive()
    {
        const int Clients = 8;
        const int MinWrites = 100;
        var loadFor = TimeSpan.FromSeconds(10);
        var hardStop = TimeSpan.FromSeconds(17);

        byte[] toA = ToA();
        byte[] toB = ToB();
        string hashA = HashOf(toA);
        string hashB = HashOf(toB);
        byte[] truncated = toA[..(toA.Length / 2)];
        byte[] unknownCluster = ConfigLoader.Serialize(new RouterConfig { Routes = [Route("r", "nope")], Clusters = [Cluster("b", _b)] });
        Assert.That(ConfigLoader.Load(truncated).IsValid || ConfigLoader.Load(unknownCluster).IsValid, Is.False);

        var dir = Directory.CreateTempSubdirectory("router-reload-load-");
        var path = Path.Combine(dir.FullName, "router.json");
        try
        {
            var validWrites = new List<ValidWrite> { new(Stopwatch.GetTimestamp(), "A", hashA) };
            await File.WriteAllBytesAsync(path, toA);
            await using var router = await RouterProcess.StartAsync(["--config", path]);
            validWrites[0].LiveAt = Stopwatch.GetTimestamp();
            using var admin = new HttpClient { BaseAddress = new Uri($"http://{router.AdminEndPoint}/") };
            var poller = new ConfigPoller(admin, [hashA, hashB]);
            await poller.PollAsync();
            long rssBefore = router.ResidentBytes();

            using var stop = new CancellationTokenSource();
            var clients = Enumerable.Range(0, Clients).Select(i => Task.Run(() => ClientLoopAsync(router.EndPoint, i, stop.Token))).ToArray();

            var applyLatencies = new List<double>();
            var rejectLatencies = new List<double>();
            var writesByKind = new Dictionary<string, int>();
            var started = Stopwatch.StartNew();
            int writes = 0;
            long rssPeak = rssBefore;
            // Ends after an iteration that made B live (k even), so A's destination is removed at the end and its
            // connections must all be closed.
            for (int k = 0; k % 2 == 0 || ((started.Elapsed < loadFor || writes < MinWrites) && started.Elapsed < hardStop); k++)
            {
                // A valid write: alternate B and A, in place or temp file + rename (after a delete, either re-creates).
                bool toBNow = k % 2 == 0;
                bool rename = k / 2 % 2 == 1;
                var valid = new ValidWrite(Stopwatch.GetTimestamp(), toBNow ? "B" : "A", toBNow ? hashB : hashA);
                Write(path, toBNow ? toB : toA, rename);
                writes++;
                Count(writesByKind, (toBNow ? "valid B" : "valid A") + (rename ? ", renamed" : ", in place"));
                await poller.WaitForHashAsync(valid.Hash);
                valid.LiveAt = poller.LastPolledAt;
                validWrites.Add(valid);
                applyLatencies.Add(Stopwatch.GetElapsedTime(valid.WrittenAt, valid.LiveAt).TotalMilliseconds);

                // An invalid write; wait until the router has rejected it (lastError changes) with the config unchanged.
                string? previousError = poller.LastErrorAt;
                long invalidAt = Stopwatch.GetTimestamp();
                switch (k % 4)
                {
                    case 0:
                        Write(path, truncated, rename: k % 8 >= 4);
                        Count(writesByKind, "truncated JSON");
                        break;
                    case 1:
                        Write(path, unknownCluster, rename: k % 8 >= 4);
                        Count(writesByKind, "unknown cluster");
                        break;
                    case 2:
                        Write(path, [], rename: k % 8 >= 4);
                        Count(writesByKind, "empty file");
                        break;
                    default:
                        File.Delete(path);
                        Count(writesByKind, "deleted");
                        break;
                }

                writes++;
                await poller.WaitForRejectionAsync(previousError, valid.Hash);
                rejectLatencies.Add(Stopwatch.GetElapsedTime(invalidAt, poller.LastPolledAt).TotalMilliseconds);
                rssPeak = Math.Max(rssPeak, router.ResidentBytes());
            }

            var loadTime = started.Elapsed;
            await stop.CancelAsync();
            var results = (await Task.WhenAll(clients)).SelectMany(r => r).ToList();

            // Zero failed requests.
            var failures = results.Where(r => r.Failure is not null).ToList();
            Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(10).Select(f => f.Failure)) + "\n" + router.Output[^Math.Min(router.Output.Length, 4000)..]);
            Assert.That(writes, Is.GreaterThanOrEqualTo(MinWrites));
            Assert.That(loadTime, Is.GreaterThanOrEqualTo(loadFor));

            // Every response came from an upstream that a config live at some instant of its [start, end] allowed.
            // Config i could be live from the moment its write began until the next valid config was seen live.
            var wrong = new List<string>();
            foreach (var r in results)
            {
                bool allowed = false;
                for (int i = 0; i < validWrites.Count && !allowed; i++)
                {
                    long from = validWrites[i].WrittenAt;
                    long to = i + 1 < validWrites.Count ? validWrites[i + 1].LiveAt : long.MaxValue;
                    allowed = validWrites[i].Upstream == r.Upstream && from <= r.End && r.Start <= to;
                }

                if (!allowed)
                {
                    wrong.Add($"{r.Upstream} answered a request in [{r.Start}, {r.End}]");
                }
            }

            Assert.That(wrong, Is.Empty, string.Join("\n", wrong.Take(10)));
            int fromA = results.Count(r => r.Upstream == "A");
            int fromB = results.Count(r => r.Upstream == "B");
            Assert.That(fromA, Is.Positive);
            Assert.That(fromB, Is.Positive);

            // No connection leaked: the clients are gone and A's destination was removed by the last valid config,
            // so the router holds no connection to A and at most one idle pooled connection per client to B.
            Assert.That(validWrites[^1].Upstream, Is.EqualTo("B"));
            int openToA = 0;
            int openToB = 0;
            bool settled = await Eventually.TrueAsync(
                () =>
                {
                    openToA = TcpTable.EstablishedTo(_a.EndPoint.Port);
                    openToB = TcpTable.EstablishedTo(_b.EndPoint.Port);
                    return openToA == 0 && openToB <= Clients;
                },
                TimeSpan.FromSeconds(5));
            Assert.That(settled, Is.True, $"connections still open: {openToA} to A (removed), {openToB} to B");
            using (var clusters = JsonDocument.Parse(await admin.GetStringAsync(new Uri("admin/clusters", UriKind.Relative))))
            {
                foreach (var destination in clusters.RootElement.GetProperty("clusters").EnumerateArray().SelectMany(c => c.GetProperty("destinations").EnumerateArray()))
                {
                    Assert.That(destination.GetProperty("openConnections").GetInt32(), Is.LessThanOrEqualTo(Clients), destination.ToString());
                    Assert.That(destination.GetProperty("inFlight").GetInt32(), Is.Zero, destination.ToString());
                }
            }

            long rssAfter = router.ResidentBytes();
            Assert.That(rssPeak, Is.LessThan(256L << 20), "router RSS stays sane");

            applyLatencies.Sort();
            rejectLatencies.Sort();
            var report = new LoadReport(
                Clients,
                loadTime,
                results.Count,
                fromA,
                fromB,
                writes,
                writesByKind,
                applyLatencies,
                rejectLatencies,
                openToA,
                openToB,
                rssBefore,
                rssPeak,
                rssAfter);
            TestContext.Out.WriteLine(report.ToMarkdown());
            report.WriteBenchResults();
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static void Write(string path, byte[] bytes, bool rename)
    {
        if (rename)
        {
            var temp = path + ".tmp";
            File.WriteAllBytes(temp, bytes);
            File.Move(temp, path, overwrite: true);
        }
        else
        {
            File.WriteAllBytes(path, bytes);
        }
    }

    private static void Count(Dictionary<string, int> counts, string kind) =>
        counts[kind] = counts.GetValueOrDefault(kind) + 1;

    private static async Task<List<ClientResult>> ClientLoopAsync(IPEndPoint router, int id, CancellationToken stop)
    {
        var results = new List<ClientResult>();
        RawHttpClient? client = null;
        try
        {
            for (int i = 0; !stop.IsCancellationRequested; i++)
            {
                long start = Stopwatch.GetTimestamp();
                try
                {
                    client ??= await RawHttpClient.ConnectAsync(router);
                    await client.SendAsync($"GET /load/{id}/{i} HTTP/1.1\r\nHost: load.test\r\n\r\n");
                    // Not cancelled by stop: a request once sent is read to its end.
                    var response = await client.ReadResponseAsync(cancellationToken: CancellationToken.None);
                    long end = Stopwatch.GetTimestamp();
                    string upstream = response.Header("X-Upstream") ?? "?";
                    string? failure = response.StatusCode != 200 || response.BodyText != $"{upstream} GET /load/{id}/{i}"
                        ? $"client {id} request {i}: {response.StatusCode} {upstream} '{response.BodyText}'"
                        : null;
                    results.Add(new ClientResult(start, end, upstream, failure));
                }
                catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or OperationCanceledException or FormatException)
                {
                    results.Add(new ClientResult(start, Stopwatch.GetTimestamp(), "?", $"client {id} request {i}: {ex.GetType().Name} {ex.Message}"));
                    client?.Dispose();
                    client = null;
                }
            }
        }
        finally
        {
            client?.Dispose();
        }

        return results;
    }

    private static async Task<string?> LiveHashAsync(HttpClient admin)
    {
        using var config = JsonDocument.Parse(await admin.GetStringAsync(new Uri("admin/config", UriKind.Relative)));
        return config.RootElement.GetProperty("hash").GetString();
    }

    private static List<ConfigError> ReadErrors(JsonElement owner) =>
        owner.GetProperty("errors").EnumerateArray()
            .Select(e => new ConfigError(e.GetProperty("path").GetString()!, e.GetProperty("message").GetString()!))
            .ToList();

    private static Task<(int ExitCode, string Output)> RunRouterAsync(params string[] args) =>
        RouterProcess.RunToExitAsync("Router.Net", args);

    private sealed class ValidWrite(long writtenAt, string upstream, string hash)
    {
        public long WrittenAt { get; } = writtenAt;

        public string Upstream { get; } = upstream;

        public string Hash { get; } = hash;

        /// <summary>When the test first saw it live (end of the admin poll that showed its hash).</summary>
        public long LiveAt { get; set; }
    }

    private sealed record ClientResult(long Start, long End, string Upstream, string? Failure);

    /// <summary>Polls GET /admin/config back to back; checks on every poll that only a known valid config is live.</summary>
    private sealed class ConfigPoller(HttpClient admin, string[] validHashes)
    {
        private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

        public string? LastErrorAt { get; private set; }

        public long LastPolledAt { get; private set; }

        public async Task<string> PollAsync()
        {
            using var config = JsonDocument.Parse(await admin.GetStringAsync(new Uri("admin/config", UriKind.Relative)));
            LastPolledAt = Stopwatch.GetTimestamp();
            var root = config.RootElement;
            string hash = root.GetProperty("hash").GetString()!;
            Assert.That(validHashes, Does.Contain(hash), "only valid configs are ever live");
            var lastError = root.GetProperty("lastError");
            LastErrorAt = lastError.ValueKind == JsonValueKind.Null ? null : lastError.GetProperty("at").GetString();
            return hash;
        }

        public async Task WaitForHashAsync(string hash)
        {
            var deadline = Stopwatch.GetTimestamp() + (long)(Timeout.TotalSeconds * Stopwatch.Frequency);
            while (await PollAsync() != hash)
            {
                Assert.That(Stopwatch.GetTimestamp(), Is.LessThan(deadline), $"config {hash} did not go live");
            }
        }

        public async Task WaitForRejectionAsync(string? previousErrorAt, string liveHash)
        {
            var deadline = Stopwatch.GetTimestamp() + (long)(Timeout.TotalSeconds * Stopwatch.Frequency);
            while (true)
            {
                string hash = await PollAsync();
                Assert.That(hash, Is.EqualTo(liveHash), "an invalid file never replaces the live config");
                if (LastErrorAt is not null && LastErrorAt != previousErrorAt)
                {
                    return;
                }

                Assert.That(Stopwatch.GetTimestamp(), Is.LessThan(deadline), "invalid write was not rejected");
            }
        }
    }

    private sealed record LoadReport(
        int Clients,
        TimeSpan LoadTime,
        int Requests,
        int FromA,
        int FromB,
        int Writes,
        Dictionary<string, int> WritesByKind,
        List<double> ApplyLatencies,
        List<double> RejectLatencies,
        int OpenToAAfter,
        int OpenToBAfter,
        long RssBefore,
        long RssPeak,
        long RssAfter)
    {
        private static double Percentile(List<double> sorted, double p) =>
            sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

        public string ToMarkdown()
        {
            var inv = CultureInfo.InvariantCulture;
            var sb = new StringBuilder();
            sb.AppendLine(inv, $"# Config hot-reload latency ({DateTime.UtcNow:yyyy-MM-dd})");
            sb.AppendLine();
            sb.AppendLine(inv, $"- machine: {Environment.ProcessorCount} cores, {CpuModel()} (shared with other jobs while measured)");
            sb.AppendLine("- command: `dotnet build Router.Tests && dotnet test Router.Tests --filter \"FullyQualifiedName~Reload_UnderLoad\"`");
            sb.AppendLine(inv, $"- date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
            sb.AppendLine("- what: a real router process (`--config FILE`, Debug build as the test runs it), two Kestrel upstreams,");
            sb.AppendLine(inv, $"  {Clients} raw keep-alive clients looping GET for {LoadTime.TotalSeconds:F1} s while the test rewrote the config file {Writes} times.");
            sb.AppendLine("  Latency is from the start of the file write to the end of the first `GET /admin/config` showing the new hash");
            sb.AppendLine("  (polled back to back), so it includes the watcher's 50 ms debounce: 50 ms is the floor, the rest is reading,");
            sb.AppendLine("  validating, compiling and swapping plus scheduling delay on a busy machine. With n of about 60, p99 is the maximum.");
            sb.AppendLine();
            sb.AppendLine("| figure | median | p99 | max | n |");
            sb.AppendLine("|---|---|---|---|---|");
            sb.AppendLine(inv, $"| valid write -> live (ms) | {Percentile(ApplyLatencies, 0.5):F1} | {Percentile(ApplyLatencies, 0.99):F1} | {ApplyLatencies[^1]:F1} | {ApplyLatencies.Count} |");
            sb.AppendLine(inv, $"| invalid write -> rejected, visible in lastError (ms) | {Percentile(RejectLatencies, 0.5):F1} | {Percentile(RejectLatencies, 0.99):F1} | {RejectLatencies[^1]:F1} | {RejectLatencies.Count} |");
            sb.AppendLine();
            sb.AppendLine(inv, $"- writes: {string.Join(", ", WritesByKind.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}"))}");
            sb.AppendLine(inv, $"- requests: {Requests} ({Requests / LoadTime.TotalSeconds:F0}/s), 0 failed; from A {FromA}, from B {FromB}; every response's upstream was allowed by a config that could have been live during it");
            sb.AppendLine(inv, $"- router -> upstream connections open after the clients left (last config sends everything to B, A removed): {OpenToAAfter} to A (must be 0), {OpenToBAfter} to B (bound {Clients})");
            sb.AppendLine(inv, $"- router RSS: {RssBefore / 1048576.0:F1} MiB before load, peak {RssPeak / 1048576.0:F1} MiB, {RssAfter / 1048576.0:F1} MiB after");
            return sb.ToString();
        }

        /// <summary>Writes the figures to bench-results/ only when asked (ROUTER_WRITE_BENCH_RESULTS=1), so a test run leaves the tree clean.</summary>
        public void WriteBenchResults()
        {
            if (Environment.GetEnvironmentVariable("ROUTER_WRITE_BENCH_RESULTS") != "1")
            {
                return;
            }

            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Router.sln")))
            {
                dir = dir.Parent;
            }

            if (dir is null)
            {
                return;
            }

            var results = Directory.CreateDirectory(Path.Combine(dir.FullName, "bench-results"));
            File.WriteAllText(Path.Combine(results.FullName, $"reload-latency-{DateTime.UtcNow:yyyy-MM-dd}.md"), ToMarkdown());
        }

        private static string CpuModel()
        {
            try
            {
                var info = new ProcessStartInfo("lscpu") { RedirectStandardOutput = true, UseShellExecute = false };
                using var process = Process.Start(info)!;
                string output = process.StandardOutput.ReadToEnd();
                process.WaitForExit();
                var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("Model name:", StringComparison.Ordinal));
                return line is null ? "unknown CPU" : line["Model name:".Length..].Trim();
            }
            catch (System.ComponentModel.Win32Exception)
            {
                return "unknown CPU";
            }
        }
    }

    /// <summary>Reads /proc/net/tcp{,6}: established connections whose remote end is a loopback port.</summary>
    private static class TcpTable
    {
        public static int EstablishedTo(int remotePort)
        {
            int count = 0;
            foreach (var file in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
            {
                if (!File.Exists(file))
                {
                    continue;
                }

                foreach (var line in File.ReadLines(file).Skip(1))
                {
                    var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (fields.Length < 4 || fields[3] != "01")
                    {
                        continue;
                    }

                    var remote = fields[2];
                    int port = int.Parse(remote[(remote.IndexOf(':', StringComparison.Ordinal) + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    if (port == remotePort)
                    {
                        count++;
                    }
                }
            }

            return count;
        }
    }

    /// <summary>An in-process router booted from a config file, with the file watcher the CLI uses.</summary>
    private sealed class FileRouter : IAsyncDisposable
    {
        private readonly DirectoryInfo _dir;
        private readonly HttpClient _http = new();

        private FileRouter(DirectoryInfo dir, string path, RouterHost host, ConfigFileWatcher watcher)
        {
            _dir = dir;
            FilePath = path;
            Host = host;
            Watcher = watcher;
        }

        public string FilePath { get; }

        public RouterHost Host { get; }

        public ConfigFileWatcher Watcher { get; }

        public IPEndPoint EndPoint => Host.ListenEndPoints[0];

        public IPEndPoint AdminEndPoint => Host.AdminEndPoint!;

        public static FileRouter Start(byte[] initial, bool watch = true)
        {
            var dir = Directory.CreateTempSubdirectory("router-reload-");
            var path = Path.Combine(dir.FullName, "router.json");
            File.WriteAllBytes(path, initial);
            var options = new RouterHostOptions
            {
                Admin = new IPEndPoint(IPAddress.Loopback, 0),
                HeartbeatPeriod = TimeSpan.FromMilliseconds(100),
            };
            options.Listen.Add(new IPEndPoint(IPAddress.Loopback, 0));
            var host = new RouterHost(options, NullLoggerFactory.Instance);
            var watcher = new ConfigFileWatcher(path, host.Applier, NullLoggerFactory.Instance);
            var outcome = watcher.Reload();
            if (!outcome.Applied)
            {
                throw new InvalidOperationException("test config invalid: " + string.Join("; ", outcome.Errors));
            }

            host.Reload = watcher.Reload;
            host.Start();
            if (watch)
            {
                watcher.Start();
            }

            return new FileRouter(dir, watcher.FilePath, host, watcher);
        }

        /// <summary>Changes the file and waits for the watcher's reload whose outcome matches.</summary>
        public async Task<ApplyOutcome> WriteAndWaitAsync(Action write, Func<ApplyOutcome, bool> until)
        {
            var seen = new TaskCompletionSource<ApplyOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
            void OnReloaded(ApplyOutcome outcome)
            {
                if (until(outcome))
                {
                    seen.TrySetResult(outcome);
                }
            }

            Watcher.Reloaded += OnReloaded;
            try
            {
                write();
                return await seen.Task.WaitAsync(TimeSpan.FromSeconds(10));
            }
            finally
            {
                Watcher.Reloaded -= OnReloaded;
            }
        }

        public async Task<string> GetBodyAsync(string path)
        {
            using var response = await _http.GetAsync(new Uri($"http://{EndPoint}{path}"));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), path);
            return await response.Content.ReadAsStringAsync();
        }

        public async Task<JsonDocument> AdminJsonAsync(string path) =>
            JsonDocument.Parse(await _http.GetStringAsync(new Uri($"http://{AdminEndPoint}{path}")));

        public async ValueTask DisposeAsync()
        {
            Watcher.Dispose();
            await Host.DisposeAsync();
            _http.Dispose();
            _dir.Delete(recursive: true);
        }
    }
}
