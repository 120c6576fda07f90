using System.Text.Json;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>
/// How operators change a config file in production, against a real router process: a Kubernetes ConfigMap
/// update (a `..data` symlink swapped by rename). What `ReloadTests` covers (in-place and renamed writes, invalid,
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
