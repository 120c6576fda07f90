using System.Diagnostics.CodeAnalysis;
using Router.Core.Configuration;

namespace Router.Core.Routing;

/// <summary>Where a live config came from and when it went live.</summary>
/// <param name="Generation">Monotonic number, +1 per applied config.</param>
/// <param name="Hash">Content hash of the config.</param>
/// <param name="Source">e.g. <c>file:/etc/router.json</c>, <c>control-plane</c>, <c>cache</c>, <c>demo</c>, <c>api</c>.</param>
/// <param name="AppliedAt">When it went live.</param>
/// <param name="Version">Control-plane version, when the config came from one.</param>
public sealed record SnapshotInfo(long Generation, string Hash, string Source, DateTimeOffset AppliedAt, long? Version = null);

/// <summary>
/// An immutable, compiled routing table. Requests read it through <see cref="RoutingTable.Current"/>;
/// a new config replaces it whole.
/// </summary>
internal sealed class RoutingSnapshot
{
    // STUB: the Routing helper replaces this with the compiled matcher.
    private RoutingSnapshot(RouterConfig config, SnapshotInfo info, CompiledRoute[] routes, ClusterState[] clusters)
    {
        Config = config;
        Info = info;
        Routes = routes;
        Clusters = clusters;
    }

    public RouterConfig Config { get; }

    public SnapshotInfo Info { get; }

    public CompiledRoute[] Routes { get; }

    public ClusterState[] Clusters { get; }

    /// <summary>
    /// Compiles a validated config. Runtime state (destination states with their pools, health, breakers,
    /// in-flight counts) of clusters and destinations that also exist in <paramref name="previous"/> is carried over.
    /// </summary>
    public static RoutingSnapshot Compile(RouterConfig config, SnapshotInfo info, RoutingSnapshot? previous)
    {
        throw new NotImplementedException();
    }

    /// <summary>Matches a request. Host may carry a port (ignored); path is the request path without query.</summary>
    public bool TryMatch(ReadOnlySpan<byte> host, ReadOnlySpan<byte> path, ReadOnlySpan<byte> method, [NotNullWhen(true)] out CompiledRoute? route)
    {
        throw new NotImplementedException();
    }

    /// <summary>Destinations of <paramref name="previous"/> that this snapshot no longer has (their pools should drain).</summary>
    public IReadOnlyList<DestinationState> RemovedSince(RoutingSnapshot previous)
    {
        throw new NotImplementedException();
    }
}
