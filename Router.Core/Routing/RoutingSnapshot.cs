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
/// <remarks>Match precedence is documented on <see cref="RouteMatcher"/>.</remarks>
internal sealed class RoutingSnapshot
{
    private static readonly IReadOnlyList<DestinationConfig> NoDestinations = Array.Empty<DestinationConfig>();

    private readonly Dictionary<string, ClusterState> _clustersById;
    private readonly RouteMatcher _matcher;

    private RoutingSnapshot(
        RouterConfig config,
        SnapshotInfo info,
        CompiledRoute[] routes,
        ClusterState[] clusters,
        Dictionary<string, ClusterState> clustersById,
        RouteMatcher matcher)
    {
        Config = config;
        Info = info;
        Routes = routes;
        Clusters = clusters;
        _clustersById = clustersById;
        _matcher = matcher;
    }

    public RouterConfig Config { get; }

    public SnapshotInfo Info { get; }

    /// <summary>Routes in config order.</summary>
    public CompiledRoute[] Routes { get; }

    /// <summary>Clusters in config order.</summary>
    public ClusterState[] Clusters { get; }

    /// <summary>
    /// Compiles a validated config. Runtime state (destination states with their pools, health, breakers,
    /// in-flight counts) of clusters and destinations that also exist in <paramref name="previous"/> is carried over.
    /// </summary>
    /// <remarks>
    /// Carry-over rules, keyed by cluster id:
    /// <list type="bullet">
    /// <item>A destination whose address is still listed in a cluster of the same id keeps its
    /// <see cref="DestinationState"/> object (same reference), whatever else changed in the cluster.
    /// A destination that moved to another cluster starts fresh.</item>
    /// <item>A cluster whose config is unchanged (same settings, same destination addresses in the same order)
    /// keeps its <see cref="ClusterState"/> object, so its in-flight count and round-robin cursor carry over.</item>
    /// <item>A cluster or route (by id) whose concurrency limit is unchanged keeps its gate even when other settings
    /// changed, so the requests in flight keep counting against it.</item>
    /// </list>
    /// Destinations not carried over are listed by <see cref="RemovedSince"/>, so their pools can drain.
    /// </remarks>
    public static RoutingSnapshot Compile(RouterConfig config, SnapshotInfo info, RoutingSnapshot? previous)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(info);

        var clusters = new ClusterState[config.Clusters.Count];
        var clustersById = new Dictionary<string, ClusterState>(clusters.Length, StringComparer.Ordinal);
        for (var i = 0; i < clusters.Length; i++)
        {
            var clusterConfig = config.Clusters[i];
            ClusterState? old = null;
            previous?.TryGetCluster(clusterConfig.Id, out old);
            var cluster = old is not null && IsUnchanged(old.Config, clusterConfig)
                ? old
                : new ClusterState(clusterConfig, CompileDestinations(clusterConfig, old), old?.Limit);
            clusters[i] = cluster;
            clustersById.Add(cluster.Id, cluster);
        }

        // Route gates carry over by route id (requests in flight keep counting against an unchanged limit).
        Dictionary<string, CompiledRoute>? previousRoutes = null;
        if (previous is not null)
        {
            previousRoutes = new Dictionary<string, CompiledRoute>(previous.Routes.Length, StringComparer.Ordinal);
            foreach (var route in previous.Routes)
            {
                previousRoutes.TryAdd(route.Id, route);
            }
        }

        var routes = new CompiledRoute[config.Routes.Count];
        for (var i = 0; i < routes.Length; i++)
        {
            var routeConfig = config.Routes[i];
            var fallback = routeConfig.FallbackCluster is { } fallbackId ? clustersById[fallbackId] : null;
            var primary = clustersById[routeConfig.Cluster];
            CompiledRoute? oldRoute = null;
            previousRoutes?.TryGetValue(routeConfig.Id, out oldRoute);
            routes[i] = new CompiledRoute(routeConfig, primary, fallback, FallbackChain(primary, fallback, clustersById), oldRoute?.Limit);
        }

        return new RoutingSnapshot(config, info, routes, clusters, clustersById, RouteMatcher.Build(routes));
    }

    private static ClusterState[] FallbackChain(ClusterState primary, ClusterState? routeFallback, Dictionary<string, ClusterState> clustersById)
    {
        var chain = new List<ClusterState>();
        var seen = new HashSet<ClusterState> { primary };
        void Add(ClusterState? cluster)
        {
            if (cluster is not null && seen.Add(cluster))
            {
                chain.Add(cluster);
            }
        }

        Add(routeFallback);
        Add(primary.Config.FallbackCluster is { } id && clustersById.TryGetValue(id, out var next) ? next : null);
        for (int i = 0; i < chain.Count; i++)
        {
            Add(chain[i].Config.FallbackCluster is { } id2 && clustersById.TryGetValue(id2, out var after) ? after : null);
        }

        return [.. chain];
    }

    /// <summary>Matches a request. Host may carry a port (ignored); path is the request path without query.</summary>
    /// <remarks>Allocates nothing, takes no lock; precedence is documented on <see cref="RouteMatcher"/>.</remarks>
    public bool TryMatch(ReadOnlySpan<byte> host, ReadOnlySpan<byte> path, ReadOnlySpan<byte> method, [NotNullWhen(true)] out CompiledRoute? route)
    {
        route = _matcher.Match(host, path, method);
        return route is not null;
    }

    /// <summary>Finds a cluster by id.</summary>
    public bool TryGetCluster(string id, [NotNullWhen(true)] out ClusterState? cluster) =>
        _clustersById.TryGetValue(id, out cluster);

    /// <summary>Destinations of <paramref name="previous"/> that this snapshot no longer has (their pools should drain).</summary>
    public IReadOnlyList<DestinationState> RemovedSince(RoutingSnapshot previous)
    {
        ArgumentNullException.ThrowIfNull(previous);

        var kept = new HashSet<DestinationState>(ReferenceEqualityComparer.Instance);
        foreach (var cluster in Clusters)
        {
            kept.UnionWith(cluster.Destinations);
        }

        var removed = new List<DestinationState>();
        foreach (var cluster in previous.Clusters)
        {
            foreach (var destination in cluster.Destinations)
            {
                // Add() also keeps a state listed twice from being reported twice.
                if (kept.Add(destination))
                {
                    removed.Add(destination);
                }
            }
        }

        return removed;
    }

    private static DestinationState[] CompileDestinations(ClusterConfig config, ClusterState? old)
    {
        // Each old state is handed out at most once, even if an address is (invalidly) listed twice.
        Dictionary<string, DestinationState>? reusable = null;
        if (old is not null)
        {
            reusable = new Dictionary<string, DestinationState>(StringComparer.Ordinal);
            foreach (var destination in old.Destinations)
            {
                reusable.TryAdd(destination.Address, destination);
            }
        }

        var destinations = new DestinationState[config.Destinations.Count];
        for (var i = 0; i < destinations.Length; i++)
        {
            var address = config.Destinations[i].Address;
            destinations[i] = reusable is not null && reusable.Remove(address, out var kept)
                ? kept
                : new DestinationState(config.Id, address, DestinationAddress.Parse(address));
        }

        return destinations;
    }

    private static bool IsUnchanged(ClusterConfig old, ClusterConfig next)
    {
        if (ReferenceEquals(old, next))
        {
            return true;
        }

        // Record equality compares lists by reference, so compare destinations by address and everything else by
        // record equality with the lists blanked out. A list field added later compares unequal: safe, never stale.
        if (old.Destinations.Count != next.Destinations.Count)
        {
            return false;
        }

        for (var i = 0; i < old.Destinations.Count; i++)
        {
            if (old.Destinations[i] != next.Destinations[i])
            {
                return false;
            }
        }

        return old with { Destinations = NoDestinations } == next with { Destinations = NoDestinations };
    }
}
