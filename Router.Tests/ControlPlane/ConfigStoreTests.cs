using NUnit.Framework;
using System.Net;
using Router.ControlPlane;
using Router.ControlPlane.Store;

namespace Router.Tests.ControlPlane;

public sealed class ConfigStoreTests
{
    [Test]
    public async Task Store_SurvivesAControlPlaneRestartOnTheSameDataDir()
    {
        using var dir = new TempDir();
        (long Version, string Hash) v2;
        await using (var cp = await TestControlPlane.StartAsync(dir.Path))
        {
            await cp.PutValidConfigAsync(TestConfigs.Valid(9001));
            v2 = await cp.PutValidConfigAsync(TestConfigs.Valid(9002));
        }

        await using var restarted = await TestControlPlane.StartAsync(dir.Path);
        using var current = await restarted.GetJsonAsync("/api/config");
        using var history = await restarted.GetJsonAsync("/api/config/history");
        var v3 = await restarted.PutValidConfigAsync(TestConfigs.Valid(9003));

        Assert.Multiple(() =>
        {
            Assert.That(current.RootElement.GetProperty("version").GetInt64(), Is.EqualTo(2));
            Assert.That(current.RootElement.GetProperty("hash").GetString(), Is.EqualTo(v2.Hash));
            Assert.That(history.RootElement.GetProperty("versions").GetArrayLength(), Is.EqualTo(2));
            Assert.That(v3.Version, Is.EqualTo(3), "numbering continues after a restart");
            Assert.That(File.Exists(Path.Combine(dir.Path, "v1.json")), Is.True);
            Assert.That(Directory.GetFiles(dir.Path, "*.tmp"), Is.Empty, "no temp file is left behind");
        });
    }

    [Test]
    public async Task InitialConfig_SeedsAnEmptyStoreOnly()
    {
        using var dir = new TempDir();
        var file = dir.Sub("initial.json");
        await File.WriteAllTextAsync(file, TestConfigs.Valid(9001));
        var data = dir.Sub("data");
        await using (var cp = await TestControlPlane.StartAsync(data, initialConfigFile: file))
        {
            await cp.PutValidConfigAsync(TestConfigs.Valid(9002));
        }

        await using var restarted = await TestControlPlane.StartAsync(data, initialConfigFile: file);
        using var history = await restarted.GetJsonAsync("/api/config/history");

        var versions = history.RootElement.GetProperty("versions");
        Assert.That(versions.GetArrayLength(), Is.EqualTo(2), "the initial config is not re-added on restart");
        Assert.That(versions[0].GetProperty("source").GetString(), Is.EqualTo("initial"));
    }

    [Test]
    public void InitialConfig_Invalid_RefusesToStart()
    {
        using var dir = new TempDir();
        var file = dir.Sub("initial.json");
        File.WriteAllText(file, TestConfigs.Invalid);

        var ex = Assert.ThrowsAsync<InvalidConfigException>(() => TestControlPlane.StartAsync(dir.Sub("data"), initialConfigFile: file));

        Assert.That(ex!.Errors, Is.Not.Empty);
        Assert.That(new ConfigStore(dir.Sub("data")).Current, Is.Null);
    }

    [Test]
    public void ParseArgs_ReadsEveryFlag()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.Sub("t"), "router-token\n");
        File.WriteAllText(dir.Sub("a"), " admin-token ");

        var options = Program.ParseArgs(
        [
            "--listen", "127.0.0.1:9443", "--data-dir", dir.Sub("d"), "--token-file", dir.Sub("t"),
            "--admin-token-file", dir.Sub("a"), "--config", "c.json", "--cert", "c.pem", "--key", "k.pem",
        ]);

        Assert.Multiple(() =>
        {
            Assert.That(options.Listen, Is.EqualTo(new IPEndPoint(IPAddress.Loopback, 9443)));
            Assert.That(options.DataDirectory, Is.EqualTo(dir.Sub("d")));
            Assert.That(options.RouterToken, Is.EqualTo("router-token"));
            Assert.That(options.AdminToken, Is.EqualTo("admin-token"));
            Assert.That(options.InitialConfigFile, Is.EqualTo("c.json"));
            Assert.That(options.CertFile, Is.EqualTo("c.pem"));
            Assert.That(options.KeyFile, Is.EqualTo("k.pem"));
        });
    }

    [TestCase("--data-dir", "d")]
    [TestCase("--listen", "not-an-endpoint", "--data-dir", "d")]
    [TestCase("--bogus", "x")]
    public void ParseArgs_WithMissingOrBadFlags_Throws(params string[] args)
    {
        Assert.Throws<ArgumentException>(() => Program.ParseArgs(args));
    }
}
