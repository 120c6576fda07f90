using System.Diagnostics;
using System.Text;
using NUnit.Framework;
using Router.ControlPlane.Store;
using Router.Core.Configuration;
using TempDir = Router.Tests.ControlPlane.TempDir;
using TestConfigs = Router.Tests.ControlPlane.TestConfigs;
using Router.Tests.Support;

namespace Router.Tests.EndToEnd;

/// <summary>The control plane server as an operator runs it: the real <c>router-cp</c> process and real sockets.</summary>
public sealed class ControlPlaneAuditTests
{
    /// <summary>Ways the data directory can be damaged (a disk filling up, a bad restore, a hand edit).</summary>
    public enum Damage
    {
        GarbageIndex,
        TruncatedIndex,
        IndexWithoutVersions,
        MissingCurrentVersion,
        TornCurrentVersion,
    }

    [TestCase(Damage.GarbageIndex, "index.json")]
    [TestCase(Damage.TruncatedIndex, "index.json")]
    [TestCase(Damage.IndexWithoutVersions, "index.json")]
    [TestCase(Damage.MissingCurrentVersion, "v2.json")]
    [TestCase(Damage.TornCurrentVersion, "v2.json")]
    public async Task CorruptedStore_RefusesToStart_WithAClearErrorNamingTheFile(Damage damage, string file)
    {
        using var dir = new TempDir();
        string data = dir.Sub("data");
        var store = new ConfigStore(data);
        foreach (var port in new[] { 9001, 9002 })
        {
            var loaded = ConfigLoader.Load(Encoding.UTF8.GetBytes(TestConfigs.Valid(port)));
            store.Add(ConfigLoader.Serialize(loaded.Config!), loaded.Hash, "test");
        }

        string index = Path.Combine(data, "index.json"), current = Path.Combine(data, "v2.json");
        switch (damage)
        {
            case Damage.GarbageIndex:
                await File.WriteAllTextAsync(index, "garbage");
                break;
            case Damage.TruncatedIndex:
                var bytes = await File.ReadAllBytesAsync(index);
                await File.WriteAllBytesAsync(index, bytes[..(bytes.Length / 2)]);
                break;
            case Damage.IndexWithoutVersions:
                await File.WriteAllTextAsync(index, "{}");
                break;
            case Damage.MissingCurrentVersion:
                File.Delete(current);
                break;
            case Damage.TornCurrentVersion:
                var config = await File.ReadAllBytesAsync(current);
                await File.WriteAllBytesAsync(current, config[..(config.Length / 2)]);
                break;
        }

        var (exitCode, output) = await RunControlPlaneAsync(dir, data);

        Assert.That(exitCode, Is.EqualTo(1), "refuses to start with exit code 1:\n" + output);
        Assert.That(output, Does.Contain("router-cp: ").And.Contain(file).And.Contain(data), "names the damaged file");
        Assert.That(output, Does.Not.Contain("Unhandled exception"), "an error message, not a crash");
    }

    /// <summary>Runs router-cp on <paramref name="data"/> until it exits (it must, within 20 s).</summary>
    private static async Task<(int ExitCode, string Output)> RunControlPlaneAsync(TempDir dir, string data)
    {
        string routerToken = dir.Sub("router.token"), adminToken = dir.Sub("admin.token");
        await File.WriteAllTextAsync(routerToken, "r\n");
        await File.WriteAllTextAsync(adminToken, "a\n");
        var info = new ProcessStartInfo(Path.Combine(RouterProcess.ProjectOutput("Router.ControlPlane"), "Router.ControlPlane"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "--listen", $"127.0.0.1:{RouterProcess.FreePort()}", "--data-dir", data, "--token-file", routerToken, "--admin-token-file", adminToken })
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
            return (-1, "still running after 20 s:\n" + await stdout + await stderr);
        }

        return (process.ExitCode, await stdout + await stderr);
    }
}
