using System.Text.Json;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>
/// How operators change a config file in production, against a real router process: a Kubernetes ConfigMap
/// update (a `..data` symlink swapped by rename), the config's directory replaced or deleted and re-created, a
/// config path whose directory does not exist. What `ReloadTests` covers (in-place and renamed writes, invalid,
/// empty and truncated files, delete and re-create of the file) is not repeated here.
/// </summary>
public sealed class ReloadAuditTests
{
    private static readonly TimeSpan ReloadTimeout = TimeSpan.FromSeconds(10);

    private TestUpstream _a = null!;
    private TestUpstream _b = null!;
    private DirectoryInfo _dir = null!;

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

    [SetUp]
    public void CreateDirectory() => _dir = Directory.CreateTempSubdirectory("router-reload-audit-");

    [TearDown]
    public void DeleteDirectory() => _dir.Delete(recursive: true);

    private byte[] ToA() => ConfigLoader.Serialize(new RouterConfig { Routes = [Route("r", "a")], Clusters = [Cluster("a", _a)] });

    private byte[] ToB() => ConfigLoader.Serialize(new RouterConfig { Routes = [Route("r", "b")], Clusters = [Cluster("b", _b)] });

    private static string HashOf(byte[] json) => ConfigLoader.Load(json).Hash;

    /// <summary>
    /// The layout the kubelet gives a ConfigMap volume: <c>config.json -> ..data/config.json</c>, <c>..data -> ..TIMESTAMP</c>.
    /// An update writes a new timestamped directory, points <c>..data_tmp</c> at it and renames that over <c>..data</c>
    /// (so the file named <c>config.json</c> itself is never written, created or renamed), then deletes the old directory.
    /// </summary>
    [Test]
    public async Task KubernetesConfigMapUpdate_SwappingTheDataSymlink_IsReloaded()
    {
        string mount = _dir.FullName;
        WriteConfigMapVersion(mount, "..2026_11_28_10_00_00.000000001", ToA());
        File.CreateSymbolicLink(Path.Combine(mount, "..data"), "..2026_11_28_10_00_00.000000001");
        File.CreateSymbolicLink(Path.Combine(mount, "config.json"), "..data/config.json");

        await using var router = await RouterProcess.StartAsync(["--config", Path.Combine(mount, "config.json")]);
        using var http = new HttpClient();
        Assert.That(await GetAsync(http, router, "/x"), Is.EqualTo("A GET /x"));

        // The update, as the kubelet's atomic writer does it.
        WriteConfigMapVersion(mount, "..2026_11_28_10_05_00.000000002", ToB());
        File.CreateSymbolicLink(Path.Combine(mount, "..data_tmp"), "..2026_11_28_10_05_00.000000002");
        Rename(Path.Combine(mount, "..data_tmp"), Path.Combine(mount, "..data"));
        Directory.Delete(Path.Combine(mount, "..2026_11_28_10_00_00.000000001"), recursive: true);

        await WaitForHashAsync(http, router, HashOf(ToB()));
        Assert.That(await GetAsync(http, router, "/x"), Is.EqualTo("B GET /x"));

        // And the next update too.
        WriteConfigMapVersion(mount, "..2026_11_28_10_10_00.000000003", ToA());
        File.CreateSymbolicLink(Path.Combine(mount, "..data_tmp"), "..2026_11_28_10_10_00.000000003");
        Rename(Path.Combine(mount, "..data_tmp"), Path.Combine(mount, "..data"));
        await WaitForHashAsync(http, router, HashOf(ToA()));
        Assert.That(await GetAsync(http, router, "/x"), Is.EqualTo("A GET /x"));
    }

    private static void WriteConfigMapVersion(string mount, string name, byte[] config)
    {
        var version = Directory.CreateDirectory(Path.Combine(mount, name));
        File.WriteAllBytes(Path.Combine(version.FullName, "config.json"), config);
    }

    /// <summary>rename(2) of a symlink over an existing one, as the kubelet does (`mv -T`).</summary>
    private static void Rename(string from, string to)
    {
        using var mv = System.Diagnostics.Process.Start("mv", ["-T", from, to]);
        mv.WaitForExit();
        Assert.That(mv.ExitCode, Is.Zero, $"mv -T {from} {to}");
    }

    /// <summary>A deploy tool that stages a whole config directory and swaps it in: `mv conf conf.old && mv conf.new conf`.</summary>
    [Test]
    public async Task ConfigDirectoryReplacedByRename_TheNewDirectoryIsReadAndWatched()
    {
        string conf = Path.Combine(_dir.FullName, "conf");
        Directory.CreateDirectory(conf);
        await File.WriteAllBytesAsync(Path.Combine(conf, "router.json"), ToA());
        await using var router = await RouterProcess.StartAsync(["--config", Path.Combine(conf, "router.json")]);
        using var http = new HttpClient();
        Assert.That(await GetAsync(http, router, "/x"), Is.EqualTo("A GET /x"));

        string staged = Path.Combine(_dir.FullName, "conf.new");
        Directory.CreateDirectory(staged);
        await File.WriteAllBytesAsync(Path.Combine(staged, "router.json"), ToB());
        Directory.Move(conf, Path.Combine(_dir.FullName, "conf.old"));
        Directory.Move(staged, conf);

        await WaitForHashAsync(http, router, HashOf(ToB()));
        Assert.That(await GetAsync(http, router, "/x"), Is.EqualTo("B GET /x"));

        // The new directory is the one watched now: an edit there goes live; one in the old directory is not read.
        await File.WriteAllBytesAsync(Path.Combine(conf, "router.json"), ToA());
        await WaitForHashAsync(http, router, HashOf(ToA()));
        Assert.That(await GetAsync(http, router, "/x"), Is.EqualTo("A GET /x"));
    }

    /// <summary>`rm -rf conf` then re-creating it: the router keeps serving, says why, and watches the new directory.</summary>
    [Test]
    public async Task ConfigDirectoryDeletedAndRecreated_KeepsServing_ThenTheNewFileGoesLive()
    {
        string conf = Path.Combine(_dir.FullName, "conf");
        string file = Path.Combine(conf, "router.json");
        Directory.CreateDirectory(conf);
        await File.WriteAllBytesAsync(file, ToA());
        await using var router = await RouterProcess.StartAsync(["--config", file]);
        using var http = new HttpClient();
        Assert.That(await GetAsync(http, router, "/x"), Is.EqualTo("A GET /x"));

        Directory.Delete(conf, recursive: true);
        var deadline = DateTime.UtcNow + ReloadTimeout;
        while (true)
        {
            using var config = await AdminConfigAsync(http, router);
            if (config.RootElement.GetProperty("lastError").ValueKind == JsonValueKind.Object)
            {
                Assert.That(config.RootElement.GetProperty("hash").GetString(), Is.EqualTo(HashOf(ToA())));
                Assert.That(config.RootElement.GetProperty("lastError").GetProperty("errors")[0].GetProperty("message").GetString(), Does.Contain(file));
                break;
            }

            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "the deletion was not reported:\n" + router.Output);
            await Task.Delay(20);
        }

        Assert.That(await GetAsync(http, router, "/x"), Is.EqualTo("A GET /x"), "last-known-good keeps serving");

        Directory.CreateDirectory(conf);
        await File.WriteAllBytesAsync(file, ToB());
        await WaitForHashAsync(http, router, HashOf(ToB()));
        Assert.That(await GetAsync(http, router, "/x"), Is.EqualTo("B GET /x"));

        await File.WriteAllBytesAsync(file, ToA());
        await WaitForHashAsync(http, router, HashOf(ToA()));
        Assert.That(await GetAsync(http, router, "/x"), Is.EqualTo("A GET /x"));
    }

    /// <summary>A typo in the directory part of --config: the same plain error as a missing file, not a stack trace.</summary>
    [Test]
    public async Task Boot_WithTheConfigDirectoryMissing_ExitsOneWithAPlainError()
    {
        string file = Path.Combine(_dir.FullName, "no-such-dir", "router.json");
        await using var router = await RouterProcess.StartAsync(["--config", file], waitReady: false);
        int exitCode = await router.WaitForExitAsync(TimeSpan.FromSeconds(20));
        Assert.That(exitCode, Is.EqualTo(1));
        Assert.That(
            await Eventually.TrueAsync(() => router.Output.Contains($"{file}: 1 error(s)", StringComparison.Ordinal), TimeSpan.FromSeconds(5)),
            Is.True,
            router.Output);
        Assert.That(router.Output, Does.Not.Contain("Unhandled exception"));
        Assert.That(router.Output, Does.Not.Contain("   at "));
    }

    private static async Task<string> GetAsync(HttpClient http, RouterProcess router, string path) =>
        await http.GetStringAsync(new Uri($"http://{router.EndPoint}{path}"));

    private static async Task<JsonDocument> AdminConfigAsync(HttpClient http, RouterProcess router) =>
        JsonDocument.Parse(await http.GetStringAsync(new Uri($"http://{router.AdminEndPoint}/admin/config")));

    /// <summary>Polls /admin/config (the router process has no other signal) until the hash is live.</summary>
    private static async Task WaitForHashAsync(HttpClient http, RouterProcess router, string hash)
    {
        var deadline = DateTime.UtcNow + ReloadTimeout;
        while (true)
        {
            using (var config = await AdminConfigAsync(http, router))
            {
                if (config.RootElement.GetProperty("hash").GetString() == hash)
                {
                    return;
                }
            }

            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), $"config {hash} did not go live:\n{router.Output}");
            await Task.Delay(20);
        }
    }
}
