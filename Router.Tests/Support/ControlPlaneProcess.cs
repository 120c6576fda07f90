using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Router.Tests.Support;

/// <summary>
/// The real <c>router-cp</c> executable as a child process, with its data directory and token files in a temp
/// directory: for tests that hard-kill the control plane and bring it back on the same data and port.
/// </summary>
internal sealed class ControlPlaneProcess : IAsyncDisposable
{
    public const string RouterToken = "e2e-router-token";
    public const string AdminToken = "e2e-admin-token";

    private readonly StringBuilder _output = new();
    private Process? _process;

    private ControlPlaneProcess(string root, int port)
    {
        Root = root;
        Port = port;
        DataDirectory = Path.Combine(root, "cp-data");
        RouterTokenFile = Path.Combine(root, "router.token");
        AdminTokenFile = Path.Combine(root, "admin.token");
        File.WriteAllText(RouterTokenFile, RouterToken + "\n");
        File.WriteAllText(AdminTokenFile, AdminToken + "\n");
        Admin = new HttpClient { BaseAddress = BaseUri, Timeout = TimeSpan.FromSeconds(10) };
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
    }

    /// <summary>Directory holding the data dir and token files; deleted on dispose.</summary>
    public string Root { get; }

    public int Port { get; }

    public string DataDirectory { get; }

    /// <summary>File with the token routers must present (pass to the router's <c>--token-file</c>).</summary>
    public string RouterTokenFile { get; }

    public string AdminTokenFile { get; }

    public Uri BaseUri => new($"http://127.0.0.1:{Port}/");

    /// <summary>What routers pass to <c>--control-plane</c>.</summary>
    public string RouterUrl => $"ws://127.0.0.1:{Port}/ws/router";

    /// <summary>An HttpClient for the admin API, with the admin token.</summary>
    public HttpClient Admin { get; }

    public int Pid => _process?.Id ?? 0;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts <c>router-cp</c> on a free loopback port and waits until its API answers.</summary>
    public static async Task<ControlPlaneProcess> StartAsync(string? initialConfigJson = null)
    {
        var root = Path.Combine(Path.GetTempPath(), "router-cp-e2e-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        var self = new ControlPlaneProcess(root, RouterProcess.FreePort());
        string? configFile = null;
        if (initialConfigJson is not null)
        {
            configFile = Path.Combine(root, "initial.json");
            await File.WriteAllTextAsync(configFile, initialConfigJson);
        }

        await self.LaunchAsync(configFile);
        return self;
    }

    /// <summary>Starts the process again on the same data directory and port (after <see cref="Kill"/>).</summary>
    public Task RestartAsync()
    {
        if (_process is { HasExited: false })
        {
            throw new InvalidOperationException("the control plane is still running");
        }

        return LaunchAsync(configFile: null);
    }

    /// <summary>SIGKILL: no graceful shutdown, no close frames; routers see their connections reset.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
    }

    public async Task<HttpResponseMessage> PutConfigAsync(string json) =>
        await Admin.PutAsync(new Uri("/api/config", UriKind.Relative), new StringContent(json, Encoding.UTF8, "application/json"));

    /// <summary>PUTs a config that must be accepted; returns its version.</summary>
    public async Task<long> PutValidConfigAsync(string json)
    {
        using var response = await PutConfigAsync(json);
        var body = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"PUT /api/config answered {(int)response.StatusCode}: {body}");
        }

        using var doc = JsonDocument.Parse(body);
        return doc.RootElement.GetProperty("version").GetInt64();
    }

    /// <summary>GET /api/routers as node id -> entry.</summary>
    public async Task<Dictionary<string, JsonElement>> GetRoutersAsync()
    {
        using var response = await Admin.GetAsync(new Uri("/api/routers", UriKind.Relative));
        response.EnsureSuccessStatusCode();
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var routers = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var router in doc.RootElement.GetProperty("routers").EnumerateArray())
        {
            routers[router.GetProperty("nodeId").GetString()!] = router.Clone();
        }

        return routers;
    }

    /// <summary>Polls GET /api/routers until the predicate holds; false at the deadline.</summary>
    public async Task<bool> WaitForRoutersAsync(Func<Dictionary<string, JsonElement>, bool> predicate, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (predicate(await GetRoutersAsync()))
            {
                return true;
            }

            if (DateTime.UtcNow >= deadline)
            {
                return false;
            }

            await Task.Delay(20);
        }
    }

    private async Task LaunchAsync(string? configFile)
    {
        var output = RouterProcess.ProjectOutput("Router.ControlPlane");
        var apphost = Path.Combine(output, "Router.ControlPlane");
        var info = File.Exists(apphost)
            ? new ProcessStartInfo(apphost)
            : new ProcessStartInfo("dotnet") { ArgumentList = { Path.Combine(output, "Router.ControlPlane.dll") } };
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.UseShellExecute = false;
        info.WorkingDirectory = Root;
        foreach (var arg in new[]
                 {
                     "--listen", $"127.0.0.1:{Port}", "--data-dir", DataDirectory,
                     "--token-file", RouterTokenFile, "--admin-token-file", AdminTokenFile,
                 })
        {
            info.ArgumentList.Add(arg);
        }

        if (configFile is not null)
        {
            info.ArgumentList.Add("--config");
            info.ArgumentList.Add(configFile);
        }

        _process?.Dispose();
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        await WaitAnsweringAsync(TimeSpan.FromSeconds(20));
    }

    /// <summary>Waits until GET /api/config gets any HTTP answer (200, or 404 while the store is empty).</summary>
    private async Task WaitAnsweringAsync(TimeSpan timeout)
    {
        using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        probe.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_process!.HasExited)
            {
                throw new InvalidOperationException($"router-cp exited with {_process.ExitCode}:\n{Output}");
            }

            try
            {
                using var response = await probe.GetAsync(new Uri(BaseUri, "/api/config"));
                if (response.StatusCode is HttpStatusCode.OK or HttpStatusCode.NotFound)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet.
            }

            await Task.Delay(25);
        }

        throw new TimeoutException("router-cp did not answer:\n" + Output);
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Admin.Dispose();
        if (_process is not null)
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }

            _process.Dispose();
        }

        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
