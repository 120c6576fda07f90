using System.Net;
using Router.Core.Configuration;
using Router.Core.Routing;

namespace Router.Net;

/// <summary>A point-in-time view of a <see cref="RouterServer"/>: what config is live, what was last rejected, where it listens.</summary>
public sealed record RouterState
{
    internal RouterState()
    {
    }

    /// <summary>True between a successful <see cref="RouterServer.StartAsync"/> and the start of a stop.</summary>
    public bool IsRunning { get; internal init; }

    /// <summary>The live config: generation, hash, source, when it went live and its version (when its source has one). Null before the first config.</summary>
    public SnapshotInfo? Config { get; internal init; }

    /// <summary>Generation of the live config (+1 per applied config); 0 before the first.</summary>
    public long Generation => Config?.Generation ?? 0;

    /// <summary>Version of the live config when its source has one (control plane); else null.</summary>
    public long? Version => Config?.Version;

    /// <summary>Content hash of the live config; empty before the first.</summary>
    public string Hash => Config?.Hash ?? "";

    /// <summary>Where the live config came from, e.g. <c>api</c>, <c>memory</c>, <c>file:/etc/router.json</c>, <c>control-plane</c>; null before the first.</summary>
    public string? Source => Config?.Source;

    /// <summary>When the live config went live; null before the first.</summary>
    public DateTimeOffset? AppliedAt => Config?.AppliedAt;

    /// <summary>The most recent rejected config (it never went live); null when none was rejected. Not cleared by a later success: compare <see cref="ConfigRejection.At"/> with <see cref="AppliedAt"/>.</summary>
    public ConfigRejection? LastRejection { get; internal init; }

    /// <summary>Bound proxy listeners (with the actual port when 0 was asked for); empty before start.</summary>
    public IReadOnlyList<IPEndPoint> ListenEndPoints { get; internal init; } = [];

    /// <summary>Bound admin listener; null when there is none.</summary>
    public IPEndPoint? AdminEndPoint { get; internal init; }

    /// <summary>Client connections open now.</summary>
    public int OpenConnections { get; internal init; }
}

/// <summary>A config that was rejected: it never went live, the previous one kept serving.</summary>
/// <param name="At">When it was rejected.</param>
/// <param name="Source">Where it came from.</param>
/// <param name="Errors">Every error, each with its JSON path.</param>
public sealed record ConfigRejection(DateTimeOffset At, string Source, IReadOnlyList<ConfigError> Errors);
