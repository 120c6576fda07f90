using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Router.Tests.Support;

/// <summary>
/// The real <c>router</c> executable as a child process: for tests that measure its memory, kill it, restart it,
/// or send it signals.
/// </summary>
internal sealed class RouterProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private DirectoryInfo? _ownedDirectory;

    private RouterProcess(Process process, IPEndPoint endPoint, IPEndPoint admin)
    {
        _process = process;
        EndPoint = endPoint;
        AdminEndPoint = admin;
    }

    public IPEndPoint EndPoint { get; }

    public IPEndPoint AdminEndPoint { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

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

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>
    /// Starts the router on a config file routing every path to <paramref name="upstreamAddress"/>; the file's temporary
    /// folder goes when the process is disposed.
    /// </summary>
    public static async Task<RouterProcess> StartProxyingAsync(
        string upstreamAddress, IDictionary<string, string>? environment = null, IReadOnlyList<string>? launcher = null)
    {
        var dir = Directory.CreateTempSubdirectory("router-process-");
        try
        {
            var config = Path.Combine(dir.FullName, "router.json");
            await File.WriteAllTextAsync(config, System.Text.Json.JsonSerializer.Serialize(new
            {
                routes = new[] { new { id = "r", match = new { pathPrefix = "/" }, cluster = "c" } },
                clusters = new[] { new { id = "c", destinations = new[] { new { address = upstreamAddress } } } },
            }));
            var router = await StartAsync(["--config", config], environment: environment, launcher: launcher);
            router._ownedDirectory = dir;
            return router;
        }
        catch
        {
            dir.Delete(recursive: true);
            throw;
        }
    }

    /// <summary>Starts the router with the given arguments plus its listen/admin ports; waits for /ready unless told not to.</summary>
    /// <param name="args">The router's arguments.</param>
    /// <param name="waitReady">Wait for /ready.</param>
    /// <param name="environment">Extra environment variables.</param>
    /// <param name="launcher">A command that execs the router in its own process (e.g. <c>prlimit --nofile=…</c>).</param>
    public static async Task<RouterProcess> StartAsync(
        IEnumerable<string> args, bool waitReady = true, IDictionary<string, string>? environment = null, IReadOnlyList<string>? launcher = null)
    {
        var listen = new IPEndPoint(IPAddress.Loopback, FreePort());
        var admin = new IPEndPoint(IPAddress.Loopback, FreePort());
        var exe = Path.Combine(ProjectOutput("Router.Net"), "Router.Net");
        var info = new ProcessStartInfo(launcher is { Count: > 0 } ? launcher[0] : exe)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (launcher is { Count: > 0 })
        {
            for (int i = 1; i < launcher.Count; i++)
            {
                info.ArgumentList.Add(launcher[i]);
            }

            info.ArgumentList.Add(exe);
        }

        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        info.ArgumentList.Add("--listen");
        info.ArgumentList.Add(listen.ToString());
        info.ArgumentList.Add("--admin");
        info.ArgumentList.Add(admin.ToString());
        if (environment is not null)
        {
            foreach (var pair in environment)
            {
                info.Environment[pair.Key] = pair.Value;
            }
        }

        var process = Process.Start(info)!;
        var self = new RouterProcess(process, listen, admin);
        process.OutputDataReceived += (_, e) => self.Append(e.Data);
        process.ErrorDataReceived += (_, e) => self.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (waitReady)
        {
            await self.WaitReadyAsync(TimeSpan.FromSeconds(20));
        }

        return self;
    }

    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"router exited with {_process.ExitCode}:\n{Output}");
            }

            try
            {
                using var response = await client.GetAsync(new Uri($"http://{AdminEndPoint}/ready"));
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(25);
        }

        throw new TimeoutException("router not ready:\n" + Output);
    }

    /// <summary>
    /// Runs a sibling project's executable (<c>Router.Net</c>, <c>Router.ControlPlane</c>) with <paramref name="args"/>
    /// until it exits, and returns its exit code and its stdout then stderr. One that is still running after 20 s is
    /// killed and reported as exit code -1.
    /// </summary>
    public static async Task<(int ExitCode, string Output)> RunToExitAsync(string project, IEnumerable<string> args)
    {
        var info = new ProcessStartInfo(Path.Combine(ProjectOutput(project), project))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            return (-1, $"{project} {string.Join(' ', args)} still running after 20 s:\n" + await stdout + await stderr);
        }

        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>
    /// The build output folder of a sibling project for the same configuration (Router.Tests/bin/Release/net10.0 ->
    /// Router.Net/bin/Release/net10.0). The test folder itself holds the ASP.NET framework's assemblies, not the
    /// packages the router's deps.json names, so executables run from their own folder.
    /// </summary>
    public static string ProjectOutput(string project)
    {
        var testDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var tfm = testDir.Name;
        var configuration = testDir.Parent!.Name;
        var root = testDir.Parent.Parent!.Parent!.Parent!.FullName;
        return Path.Combine(root, project, "bin", configuration, tfm);
    }

    /// <summary>Resident memory in bytes (VmRSS).</summary>
    public long ResidentBytes()
    {
        foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                var kb = line["VmRSS:".Length..].Trim().Split(' ')[0];
                return long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
    }

    public void Signal(int signal)
    {
        using var kill = Process.Start("kill", $"-{signal} {_process.Id}");
        kill.WaitForExit();
    }

    public void Kill() => _process.Kill(entireProcessTree: true);

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
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
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        _ownedDirectory?.Delete(recursive: true);
    }
}
