using NUnit.Framework;
using Router.Net.ControlPlane;
using Router.Tests.ControlPlane;

namespace Router.Tests.Net.ControlPlane;

public sealed class LastKnownGoodCacheTests
{
    [Test]
    public void Save_ThenTryLoad_ReturnsTheSameBytesVersionAndHash()
    {
        using var dir = new TempDir();
        var json = "{\"routes\":[]}"u8.ToArray();

        LastKnownGoodCache.Save(dir.Path, json, 7, "abc");
        var loaded = LastKnownGoodCache.TryLoad(dir.Path, out var back, out var version, out var hash);

        Assert.That(loaded, Is.True);
        Assert.That(back, Is.EqualTo(json));
        Assert.That(version, Is.EqualTo(7));
        Assert.That(hash, Is.EqualTo("abc"));
        Assert.That(Directory.GetFiles(dir.Path, "*.tmp"), Is.Empty, "the temp file was renamed, not left behind");
    }

    [Test]
    public void Save_OverAnExistingCache_ReplacesItWhole()
    {
        using var dir = new TempDir();
        LastKnownGoodCache.Save(dir.Path, new byte[10_000], 1, "one");

        LastKnownGoodCache.Save(dir.Path, "{}"u8, 2, "two");
        LastKnownGoodCache.TryLoad(dir.Path, out var json, out var version, out var hash);

        Assert.That(json, Is.EqualTo("{}"u8.ToArray()));
        Assert.That((version, hash), Is.EqualTo(((long?)2, "two")));
    }

    [Test]
    public void TryLoad_WithNoCache_ReturnsFalse()
    {
        using var dir = new TempDir();

        Assert.That(LastKnownGoodCache.TryLoad(dir.Sub("nothing-here"), out var json, out var version, out var hash), Is.False);
        Assert.That(json, Is.Empty);
        Assert.That(version, Is.Null);
        Assert.That(hash, Is.Empty);
    }

    [Test]
    public void TryLoad_WhenMetadataDescribesOtherBytes_ReturnsTheConfigWithUnknownVersion()
    {
        using var dir = new TempDir();
        LastKnownGoodCache.Save(dir.Path, "{}"u8, 3, "three");
        // As if the process died between writing the config and writing its metadata.
        File.WriteAllText(Path.Combine(dir.Path, LastKnownGoodCache.ConfigFileName), "{\"routes\":[]}");

        var loaded = LastKnownGoodCache.TryLoad(dir.Path, out var json, out var version, out var hash);

        Assert.That(loaded, Is.True);
        Assert.That(json, Is.EqualTo("{\"routes\":[]}"u8.ToArray()));
        Assert.That(version, Is.Null);
        Assert.That(hash, Is.Empty);
    }

    [Test]
    public void TryLoad_WithCorruptMetadata_StillReturnsTheConfig()
    {
        using var dir = new TempDir();
        LastKnownGoodCache.Save(dir.Path, "{}"u8, 3, "three");
        File.WriteAllText(Path.Combine(dir.Path, LastKnownGoodCache.MetaFileName), "not json");

        Assert.That(LastKnownGoodCache.TryLoad(dir.Path, out var json, out var version, out _), Is.True);
        Assert.That(json, Is.EqualTo("{}"u8.ToArray()));
        Assert.That(version, Is.Null);
    }
}
