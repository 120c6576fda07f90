namespace Router.Core.Routing;

/// <summary>
/// Holds the live <see cref="RoutingSnapshot"/>. Readers take one volatile read; writers swap the
/// reference with one <see cref="Interlocked.Exchange{T}(ref T, T)"/>, so a request that started on
/// snapshot N finishes on N.
/// </summary>
internal sealed class RoutingTable
{
    private RoutingSnapshot? _current;

    public RoutingSnapshot? Current => Volatile.Read(ref _current);

    /// <summary>Makes <paramref name="next"/> live and returns the snapshot it replaced.</summary>
    public RoutingSnapshot? Swap(RoutingSnapshot next) => Interlocked.Exchange(ref _current, next);
}
