using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Router.Core.ControlPlane;

namespace Router.Benchmarks;

/// <summary>
/// Fan-out benchmark (not BenchmarkDotNet): the real <c>router-cp</c> process, N simulated routers in this process
/// (one <see cref="ClientWebSocket"/> each, speaking the protocol: hello, ack every config, answer heartbeats), then
/// C sequential <c>PUT /api/config</c>. Per change: time from just before the PUT until the last simulated router has
/// sent its ack. Reports p50/p99 over the changes and the control plane's resident memory.
/// <code>dotnet run -c Release --project Router.Benchmarks -- fanout [--routers 1000] [--changes 20] [--routes 50] [--out DIR]</code>
/// </summary>
internal static class ControlPlaneFanOut
{
    private const string RouterToken = "fanout-router-token";
    private const string AdminToken = "fanout-admin-token";

    public static async Task<int> RunAsync(string[] args)
    {
        int routers = 1000, changes = 20, routes = 50;
        string? outDir = null;
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--routers": routers = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--changes": changes = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--routes": routes = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--out": outDir = args[i + 1]; break;
                default:
                    await Console.Error.WriteLineAsync($"unknown option {args[i]}; usage: fanout [--routers N] [--changes N] [--routes N] [--out DIR]");
                    return 2;
            }
        }

        var repo = RepositoryRoot();
        outDir ??= Path.Combine(repo, "bench-results");
        var work = Path.Combine(Path.GetTempPath(), "router-fanout-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        var port = FreePort();
        using var cp = StartControlPlane(repo, work, port, Config(routes, 0));
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(30) };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        var fleet = new Fleet(routers);
        var sims = new List<SimulatedRouter>(routers);
        try
        {
            await WaitAnsweringAsync(admin, cp);
            var idleRss = ResidentKb(cp.Id, "VmRSS:");
            Console.WriteLine($"router-cp pid {cp.Id} on 127.0.0.1:{port}; connecting {routers} simulated routers...");

            // Version 1 is the initial config: every router gets it on hello, and acks it.
            var connectClock = Stopwatch.StartNew();
            var initial = fleet.Expect(1);
            using (var gate = new SemaphoreSlim(64))
            {
                var connects = new Task<SimulatedRouter>[routers];
                for (var i = 0; i < routers; i++)
                {
                    connects[i] = SimulatedRouter.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/ws/router"), "sim-" + i.ToString("D4", CultureInfo.InvariantCulture), fleet, gate);
                }

                sims.AddRange(await Task.WhenAll(connects));
            }

            await initial.WaitAsync(TimeSpan.FromSeconds(60));
            var connectSeconds = connectClock.Elapsed.TotalSeconds;
            Console.WriteLine($"{routers} routers connected and acked version 1 in {connectSeconds:0.00} s");
            var connectedRss = ResidentKb(cp.Id, "VmRSS:");

            var samples = new List<double>(changes);
            for (var change = 1; change <= changes; change++)
            {
                var version = change + 1L;
                var allAcked = fleet.Expect(version);
                var start = Stopwatch.GetTimestamp();
                using (var response = await admin.PutAsync(new Uri("/api/config", UriKind.Relative), new StringContent(Config(routes, change), Encoding.UTF8, "application/json")))
                {
                    var body = await response.Content.ReadAsStringAsync();
                    if (!response.IsSuccessStatusCode || !body.Contains($"\"version\":{version}", StringComparison.Ordinal))
                    {
                        throw new InvalidOperationException($"PUT {change}: {(int)response.StatusCode} {body}");
                    }
                }

                var lastAck = await allAcked.WaitAsync(TimeSpan.FromSeconds(60));
                var ms = Stopwatch.GetElapsedTime(start, lastAck).TotalMilliseconds;
                samples.Add(ms);
                Console.WriteLine($"change {change,3}: version {version} acked by all {routers} in {ms,8:0.0} ms");
            }

            // The CP's own view agrees: every router shows the last version.
            var lastVersion = changes + 1L;
            var cpAgrees = await CountAppliedAsync(admin, lastVersion);
            var rss = ResidentKb(cp.Id, "VmRSS:");
            var hwm = ResidentKb(cp.Id, "VmHWM:");
            var frameBytes = Encoding.UTF8.GetByteCount(Config(routes, changes));
            var report = Report(routers, changes, routes, frameBytes, connectSeconds, samples, idleRss, connectedRss, rss, hwm, cpAgrees, args);
            Console.WriteLine();
            Console.WriteLine(report);
            Directory.CreateDirectory(outDir);
            var file = Path.Combine(outDir, $"cp-fanout-{DateTime.UtcNow:yyyy-MM-dd}.md");
            await File.WriteAllTextAsync(file, report);
            Console.WriteLine($"written to {file}");
            return cpAgrees == routers ? 0 : 1;
        }
        finally
        {
            foreach (var sim in sims)
            {
                sim.Abort();
            }

            if (!cp.HasExited)
            {
                cp.Kill(entireProcessTree: true);
                await cp.WaitForExitAsync();
            }

            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>A config with <paramref name="routes"/> routes and clusters; <paramref name="change"/> makes each one distinct.</summary>
    private static string Config(int routes, int change)
    {
        var json = new StringBuilder("{\"routes\":[");
        for (var i = 0; i < routes; i++)
        {
            json.Append(CultureInfo.InvariantCulture, $"{(i == 0 ? "" : ",")}{{\"id\":\"route-{i}\",\"match\":{{\"hosts\":[\"svc{i}.example.test\"],\"pathPrefix\":\"/v{change}/\"}},\"cluster\":\"c{i}\"}}");
        }

        json.Append("],\"clusters\":[");
        for (var i = 0; i < routes; i++)
        {
            json.Append(CultureInfo.InvariantCulture, $"{(i == 0 ? "" : ",")}{{\"id\":\"c{i}\",\"destinations\":[{{\"address\":\"10.0.{i / 250}.{i % 250 + 1}:8080\"}},{{\"address\":\"10.1.{i / 250}.{i % 250 + 1}:8080\"}}]}}");
        }

        return json.Append("]}").ToString();
    }

    private static Process StartControlPlane(string repo, string work, int port, string initialConfig)
    {
        File.WriteAllText(Path.Combine(work, "router.token"), RouterToken);
        File.WriteAllText(Path.Combine(work, "admin.token"), AdminToken);
        File.WriteAllText(Path.Combine(work, "initial.json"), initialConfig);

        // Same configuration and framework as this harness (Router.Benchmarks/bin/Release/net10.0 -> Router.ControlPlane/bin/Release/net10.0).
        var self = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var output = Path.Combine(repo, "Router.ControlPlane", "bin", self.Parent!.Name, self.Name);
        var apphost = Path.Combine(output, "Router.ControlPlane");
        var info = File.Exists(apphost)
            ? new ProcessStartInfo(apphost)
            : new ProcessStartInfo("dotnet") { ArgumentList = { Path.Combine(output, "Router.ControlPlane.dll") } };
        foreach (var arg in new[]
                 {
                     "--listen", $"127.0.0.1:{port}", "--data-dir", Path.Combine(work, "data"),
                     "--token-file", Path.Combine(work, "router.token"), "--admin-token-file", Path.Combine(work, "admin.token"),
                     "--config", Path.Combine(work, "initial.json"),
                 })
        {
            info.ArgumentList.Add(arg);
        }

        info.UseShellExecute = false;
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start " + info.FileName);

        // Drained, not shown: the CP logs one line per connect and per ack (its shipped Information level).
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, e) =>
        {
            if (e.Data is not null)
            {
                Console.Error.WriteLine("router-cp: " + e.Data);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static async Task WaitAnsweringAsync(HttpClient admin, Process cp)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (cp.HasExited)
            {
                throw new InvalidOperationException($"router-cp exited with {cp.ExitCode}");
            }

            try
            {
                using var response = await admin.GetAsync(new Uri("/api/config", UriKind.Relative));
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(50);
        }

        throw new TimeoutException("router-cp did not answer");
    }

    private static async Task<int> CountAppliedAsync(HttpClient admin, long version)
    {
        using var doc = JsonDocument.Parse(await admin.GetStringAsync(new Uri("/api/routers", UriKind.Relative)));
        var count = 0;
        foreach (var router in doc.RootElement.GetProperty("routers").EnumerateArray())
        {
            if (router.GetProperty("connected").GetBoolean()
                && router.TryGetProperty("appliedVersion", out var v) && v.ValueKind == JsonValueKind.Number && v.GetInt64() == version)
            {
                count++;
            }
        }

        return count;
    }

    private static string Report(
        int routers, int changes, int routes, int configBytes, double connectSeconds, List<double> samples,
        long idleRssKb, long connectedRssKb, long rssKb, long hwmKb, int cpAgrees, string[] args)
    {
        var cpu = "unknown";
        foreach (var line in File.ReadLines("/proc/cpuinfo"))
        {
            if (line.StartsWith("model name", StringComparison.Ordinal))
            {
                cpu = line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
                break;
            }
        }

        var sorted = samples.Order().ToArray();
        double P(double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
        var r = new StringBuilder();
        r.AppendLine(CultureInfo.InvariantCulture, $"# Control-plane fan-out, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        r.AppendLine();
        r.AppendLine(CultureInfo.InvariantCulture, $"- Machine: nproc={Environment.ProcessorCount}, Model name: {cpu}; shared with other jobs, and the simulated routers run on the same 2 cores as the CP.");
        var command = ("dotnet run -c Release --project Router.Benchmarks -- fanout " + string.Join(' ', args)).TrimEnd();
        r.AppendLine(CultureInfo.InvariantCulture, $"- Command: `{command}`");
        r.AppendLine(CultureInfo.InvariantCulture, $"- Setup: the real `router-cp` process (Release, default settings, Information logging drained through a pipe); {routers} simulated routers in the harness process, one `ClientWebSocket` each over loopback (hello, ack every config, answer heartbeats).");
        r.AppendLine(CultureInfo.InvariantCulture, $"- Config: {routes} routes + {routes} clusters (2 destinations each), {configBytes} bytes of JSON per version.");
        r.AppendLine(CultureInfo.InvariantCulture, $"- Measure: {changes} sequential `PUT /api/config`; time from just before the PUT to the moment the last of the {routers} routers has sent its ack (harness clock).");
        r.AppendLine(CultureInfo.InvariantCulture, $"- Connect: all {routers} routers connected and acked version 1 in {connectSeconds:0.00} s (64 concurrent handshakes).");
        r.AppendLine(CultureInfo.InvariantCulture, $"- Check: `GET /api/routers` afterwards lists {cpAgrees}/{routers} routers connected on the last version.");
        r.AppendLine();
        r.AppendLine("| PUT -> all routers acked | ms |");
        r.AppendLine("|---|---|");
        r.AppendLine(CultureInfo.InvariantCulture, $"| p50 | {P(0.50):0.0} |");
        r.AppendLine(CultureInfo.InvariantCulture, $"| p99 | {P(0.99):0.0} |");
        r.AppendLine(CultureInfo.InvariantCulture, $"| min | {sorted[0]:0.0} |");
        r.AppendLine(CultureInfo.InvariantCulture, $"| max | {sorted[^1]:0.0} |");
        r.AppendLine();
        r.AppendLine("| router-cp memory (separate process, /proc/PID/status) | MiB |");
        r.AppendLine("|---|---|");
        r.AppendLine(CultureInfo.InvariantCulture, $"| RSS idle, before any router | {idleRssKb / 1024.0:0.0} |");
        r.AppendLine(CultureInfo.InvariantCulture, $"| RSS with {routers} routers connected | {connectedRssKb / 1024.0:0.0} |");
        r.AppendLine(CultureInfo.InvariantCulture, $"| RSS after {changes} changes | {rssKb / 1024.0:0.0} |");
        r.AppendLine(CultureInfo.InvariantCulture, $"| peak RSS (VmHWM) | {hwmKb / 1024.0:0.0} |");
        r.AppendLine();
        r.AppendLine(CultureInfo.InvariantCulture, $"Per change (ms): {string.Join(", ", samples.Select(s => s.ToString("0.0", CultureInfo.InvariantCulture)))}");
        return r.ToString();
    }

    private static long ResidentKb(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
            {
                return long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Router.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Router.sln not found above " + AppContext.BaseDirectory);
    }

    /// <summary>Counts acks per version; completes with the timestamp of the last router's ack.</summary>
    private sealed class Fleet(int size)
    {
        private readonly Lock _gate = new();
        private long _version;
        private int _acks;
        private TaskCompletionSource<long> _done = new();

        public Task<long> Expect(long version)
        {
            lock (_gate)
            {
                _version = version;
                _acks = 0;
                _done = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
                return _done.Task;
            }
        }

        public void Acked(long version, long timestamp)
        {
            lock (_gate)
            {
                if (version == _version && ++_acks == size)
                {
                    _done.TrySetResult(timestamp);
                }
            }
        }
    }

    /// <summary>One simulated router: all sends happen on its receive loop, so a socket never has two sends in flight.</summary>
    private sealed class SimulatedRouter
    {
        private readonly ClientWebSocket _ws;
        private readonly string _nodeId;
        private readonly Fleet _fleet;

        private SimulatedRouter(ClientWebSocket ws, string nodeId, Fleet fleet)
        {
            _ws = ws;
            _nodeId = nodeId;
            _fleet = fleet;
        }

        public static async Task<SimulatedRouter> ConnectAsync(Uri uri, string nodeId, Fleet fleet, SemaphoreSlim gate)
        {
            var ws = new ClientWebSocket();
            ws.Options.SetRequestHeader("Authorization", "Bearer " + RouterToken);
            ws.Options.KeepAliveInterval = TimeSpan.FromSeconds(15);
            await gate.WaitAsync();
            try
            {
                await ws.ConnectAsync(uri, CancellationToken.None);
            }
            finally
            {
                gate.Release();
            }

            var router = new SimulatedRouter(ws, nodeId, fleet);
            await router.SendAsync(new HelloMessage(nodeId, "fanout-sim", null, null));
            _ = Task.Run(router.ReceiveLoopAsync);
            return router;
        }

        public void Abort() => _ws.Abort();

        private async Task ReceiveLoopAsync()
        {
            var buffer = new ArrayBufferWriter<byte>(16 * 1024);
            try
            {
                while (true)
                {
                    buffer.ResetWrittenCount();
                    ValueWebSocketReceiveResult result;
                    do
                    {
                        result = await _ws.ReceiveAsync(buffer.GetMemory(16 * 1024), CancellationToken.None);
                        if (result.MessageType == WebSocketMessageType.Close)
                        {
                            return;
                        }

                        buffer.Advance(result.Count);
                    }
                    while (!result.EndOfMessage);

                    if (!ControlPlaneCodec.TryParse(buffer.WrittenSpan, out var message, out var error))
                    {
                        await Console.Error.WriteLineAsync($"{_nodeId}: bad frame: {error}");
                        continue;
                    }

                    switch (message)
                    {
                        case ConfigMessage config:
                            // A real router validates and compiles here; the simulation measures the CP's fan-out only.
                            await SendAsync(new AckMessage(config.Version, config.Hash));
                            _fleet.Acked(config.Version, Stopwatch.GetTimestamp());
                            break;
                        case HeartbeatMessage heartbeat:
                            await SendAsync(new HeartbeatMessage(heartbeat.ConfigVersion));
                            break;
                    }
                }
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException)
            {
                // Torn down at the end of the run.
            }
        }

        private Task SendAsync(ControlPlaneMessage message) =>
            _ws.SendAsync(ControlPlaneCodec.Serialize(message), WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);
    }
}
