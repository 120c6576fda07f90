using Router.Core.Routing;

namespace Router.Core.Configuration;

/// <summary>
/// The outcome of applying a config to a router: it went live (or already was), or it was rejected with every error
/// and the previous config keeps serving.
/// </summary>
public sealed class ApplyResult
{
    /// <summary>Creates a result. Routers create these; sources and tests may too.</summary>
    /// <param name="applied">True when the config is now live, or already was (same hash).</param>
    /// <param name="hash">Content hash of the config; empty when it did not validate.</param>
    /// <param name="live">The config live after the call (the new one, or the unchanged previous one); null when none is.</param>
    /// <param name="errors">Every validation error when not applied; empty when applied.</param>
    public ApplyResult(bool applied, string hash, SnapshotInfo? live, IReadOnlyList<ConfigError> errors)
    {
        ArgumentNullException.ThrowIfNull(hash);
        ArgumentNullException.ThrowIfNull(errors);
        Applied = applied;
        Hash = hash;
        Live = live;
        Errors = errors;
    }

    /// <summary>True when the config is now live, or already was (same hash).</summary>
    public bool Applied { get; }

    /// <summary>Content hash (lower-case hex SHA-256 of the canonical form); empty when the config did not validate.</summary>
    public string Hash { get; }

    /// <summary>
    /// The config live after the call: the applied one when <see cref="Applied"/>, else the unchanged previous one
    /// (null when the router has never had a config).
    /// </summary>
    public SnapshotInfo? Live { get; }

    /// <summary>Every error found, each with its JSON path, in document order; empty when applied.</summary>
    public IReadOnlyList<ConfigError> Errors { get; }

    /// <inheritdoc />
    public override string ToString() =>
        Applied ? $"applied (generation {Live?.Generation}, hash {Hash})" : $"rejected: {string.Join("; ", Errors)}";
}
