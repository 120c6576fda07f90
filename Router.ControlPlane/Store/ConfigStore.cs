using System.Text.Json;
using Router.Core.Configuration;
using Router.Core.ControlPlane;

namespace Router.ControlPlane.Store;

/// <summary>
/// Every accepted config version, in order, on disk under the data directory: <c>v{N}.json</c> (canonical config)
/// plus <c>index.json</c> (version, hash, time, source). Each file is replaced atomically and the version file is
/// written before the index names it, so a crash never leaves the index pointing at a missing or torn version.
/// </summary>
internal sealed class ConfigStore
{
    private const string IndexFileName = "index.json";

    private readonly string _dataDir;
    private readonly Lock _gate = new();
    private readonly List<StoredVersionInfo> _versions;
    private StoredConfig? _current;

    public ConfigStore(string dataDir)
    {
        _dataDir = dataDir;
        Directory.CreateDirectory(dataDir);
        _versions = LoadIndex(dataDir);
        if (_versions.Count > 0)
        {
            var last = _versions[^1];
            _current = new StoredConfig(last, LoadVersion(VersionPath(last.Version), last.Hash));
        }
    }

    /// <summary>Raised after a new version is durable. Handlers run on the caller's thread and must not block.</summary>
    public event Action<StoredConfig>? Published;

    /// <summary>The newest version; null while the store is empty.</summary>
    public StoredConfig? Current => Volatile.Read(ref _current);

    /// <summary>Metadata of every version, oldest first.</summary>
    public IReadOnlyList<StoredVersionInfo> History()
    {
        lock (_gate)
        {
            return [.. _versions];
        }
    }

    /// <summary>
    /// Stores a validated config as the next version and publishes it. When its hash equals the current one nothing
    /// changes and the current version comes back with <c>Created = false</c>.
    /// </summary>
    public (StoredConfig Config, bool Created) Add(byte[] canonicalJson, string hash, string source)
    {
        StoredConfig added;
        lock (_gate)
        {
            if (_current is not null && _current.Hash == hash)
            {
                return (_current, false);
            }

            var version = _versions.Count == 0 ? 1 : _versions[^1].Version + 1;
            var info = new StoredVersionInfo(version, hash, DateTimeOffset.UtcNow, source);
            AtomicFile.Write(VersionPath(version), canonicalJson);
            _versions.Add(info);
            try
            {
                AtomicFile.Write(Path.Combine(_dataDir, IndexFileName), JsonSerializer.SerializeToUtf8Bytes(new StoreIndex(_versions), StoreJsonContext.Default.StoreIndex));
            }
            catch
            {
                _versions.RemoveAt(_versions.Count - 1);
                throw;
            }

            added = new StoredConfig(info, canonicalJson);
            Volatile.Write(ref _current, added);
        }

        // Outside the lock: subscribers only enqueue, and versions only grow, so order between publishers does not matter.
        Published?.Invoke(added);
        return (added, true);
    }

    /// <summary>Makes an old version's config the newest version. Null when the version does not exist.</summary>
    public (StoredConfig Config, bool Created)? Rollback(long version)
    {
        StoredVersionInfo? target = null;
        lock (_gate)
        {
            foreach (var v in _versions)
            {
                if (v.Version == version)
                {
                    target = v;
                    break;
                }
            }
        }

        if (target is null)
        {
            return null;
        }

        var json = File.ReadAllBytes(VersionPath(version));
        return Add(json, target.Hash, "rollback:" + version);
    }

    private string VersionPath(long version) => Path.Combine(_dataDir, "v" + version + ".json");

    private static List<StoredVersionInfo> LoadIndex(string dataDir)
    {
        var path = Path.Combine(dataDir, IndexFileName);
        if (!File.Exists(path))
        {
            return [];
        }

        StoreIndex? index;
        try
        {
            index = JsonSerializer.Deserialize(File.ReadAllBytes(path), StoreJsonContext.Default.StoreIndex);
        }
        catch (Exception ex) when (ex is JsonException or IOException or UnauthorizedAccessException)
        {
            throw new CorruptStoreException(path, ex.Message);
        }

        if (index?.Versions is not { } versions)
        {
            throw new CorruptStoreException(path, "it lists no versions");
        }

        return [.. versions];
    }

    /// <summary>The current version's document; it must be the one the index names (its SHA-256 is the stored hash).</summary>
    private static byte[] LoadVersion(string path, string hash)
    {
        byte[] json;
        try
        {
            json = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CorruptStoreException(path, ex.Message);
        }

        // Stored documents are the canonical serialisation the hash was computed over.
        if (!string.Equals(ConfigLoader.HashOfCanonical(json), hash, StringComparison.OrdinalIgnoreCase))
        {
            throw new CorruptStoreException(path, $"its content does not match the hash {hash} recorded in {IndexFileName} (torn or edited)");
        }

        return json;
    }
}

/// <summary>The data directory cannot be read back: the control plane must not start on it (nor renumber over it).</summary>
internal sealed class CorruptStoreException(string file, string reason)
    : Exception($"the config store is damaged: {file}: {reason.TrimEnd('.')}. Restore the data directory from a backup, or move it away to start an empty store (versions then restart at 1)");

/// <summary>One version's metadata.</summary>
internal sealed record StoredVersionInfo(long Version, string Hash, DateTimeOffset CreatedUtc, string Source);

/// <summary>A version with its canonical config document; the config frame is built once and shared by every router.</summary>
internal sealed class StoredConfig(StoredVersionInfo info, byte[] json)
{
    private byte[]? _frame;

    public StoredVersionInfo Info { get; } = info;

    public long Version => Info.Version;

    public string Hash => Info.Hash;

    public byte[] Json { get; } = json;

    /// <summary>The serialized <c>config</c> frame for this version.</summary>
    public byte[] Frame => _frame ??= ControlPlaneCodec.SerializeConfig(Version, Hash, Json);
}

internal sealed record StoreIndex(IReadOnlyList<StoredVersionInfo> Versions);
