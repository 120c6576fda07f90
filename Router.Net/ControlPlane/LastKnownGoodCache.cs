using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Router.Core.ControlPlane;

namespace Router.Net.ControlPlane;

/// <summary>
/// The last config the control plane delivered and the router applied, kept on disk so a router that restarts
/// while the control plane is down still routes (invariant 4). Files: <c>last-known-good.json</c> (the config)
/// and <c>last-known-good.meta.json</c> (version, hash, SHA-256 of the config file's bytes).
/// </summary>
internal static class LastKnownGoodCache
{
    public const string ConfigFileName = "last-known-good.json";
    public const string MetaFileName = "last-known-good.meta.json";

    /// <summary>Writes config then metadata, each atomically (temp file, fsync, rename over).</summary>
    public static void Save(string cacheDir, ReadOnlySpan<byte> configJson, long? version, string hash)
    {
        Directory.CreateDirectory(cacheDir);
        AtomicFile.Write(Path.Combine(cacheDir, ConfigFileName), configJson);
        var meta = new LastKnownGoodMeta(version, hash, Convert.ToHexStringLower(SHA256.HashData(configJson)), DateTimeOffset.UtcNow);
        AtomicFile.Write(Path.Combine(cacheDir, MetaFileName), JsonSerializer.SerializeToUtf8Bytes(meta, LastKnownGoodJsonContext.Default.LastKnownGoodMeta));
    }

    /// <summary>
    /// Loads the cached config. The version and hash come from the metadata only when it describes exactly these
    /// bytes (a crash between the two renames leaves them unknown: null and empty); the config itself is still usable.
    /// The caller validates the config like any other source.
    /// </summary>
    public static bool TryLoad(string cacheDir, out byte[] json, out long? version, out string hash)
    {
        json = [];
        version = null;
        hash = "";
        var configPath = Path.Combine(cacheDir, ConfigFileName);
        try
        {
            if (!File.Exists(configPath))
            {
                return false;
            }

            json = File.ReadAllBytes(configPath);
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }

        try
        {
            var metaPath = Path.Combine(cacheDir, MetaFileName);
            if (File.Exists(metaPath))
            {
                var meta = JsonSerializer.Deserialize(File.ReadAllBytes(metaPath), LastKnownGoodJsonContext.Default.LastKnownGoodMeta);
                if (meta is not null && meta.ContentSha256 == Convert.ToHexStringLower(SHA256.HashData(json)))
                {
                    version = meta.Version;
                    hash = meta.Hash ?? "";
                }
            }
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            // Metadata is advisory; the config alone is enough to route.
        }

        return true;
    }
}

internal sealed record LastKnownGoodMeta(long? Version, string? Hash, string ContentSha256, DateTimeOffset SavedUtc);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(LastKnownGoodMeta))]
internal sealed partial class LastKnownGoodJsonContext : JsonSerializerContext;
