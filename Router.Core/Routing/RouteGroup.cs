namespace Router.Core.Routing;

/// <summary>One route as a matcher entry: its path prefix and method filter, pre-encoded.</summary>
internal readonly struct RouteEntry
{
    public RouteEntry(CompiledRoute route, byte[] pathPrefix, int methodMask, byte[][]? customMethods)
    {
        Route = route;
        PathPrefix = pathPrefix;
        MethodMask = methodMask;
        CustomMethods = customMethods;
    }

    public CompiledRoute Route { get; }

    public byte[] PathPrefix { get; }

    /// <summary><see cref="RouteMethods"/> bits this route allows; <see cref="RouteMethods.Any"/> for no filter.</summary>
    public int MethodMask { get; }

    /// <summary>Allowed methods outside the known set; null when the route allows any method.</summary>
    public byte[][]? CustomMethods { get; }

    public bool AllowsMethod(int methodBit, ReadOnlySpan<byte> method)
    {
        if ((MethodMask & methodBit) == 0)
        {
            return false;
        }

        if (methodBit != RouteMethods.Custom || CustomMethods is not { } custom)
        {
            return true;
        }

        foreach (var allowed in custom)
        {
            if (method.SequenceEqual(allowed))
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>
/// The routes that share one host key (an exact host, a wildcard suffix, or any host), ordered so the first
/// entry that matches is the one that wins: longest path prefix first, then routes with a method filter before
/// routes without one, then config order.
/// </summary>
internal sealed class RouteGroup
{
    private readonly RouteEntry[] _entries;

    public RouteGroup(RouteEntry[] entries) => _entries = entries;

    public ReadOnlySpan<RouteEntry> Entries => _entries;

    public CompiledRoute? Match(ReadOnlySpan<byte> path, int methodBit, ReadOnlySpan<byte> method)
    {
        foreach (ref readonly var entry in _entries.AsSpan())
        {
            if (path.StartsWith(entry.PathPrefix) && entry.AllowsMethod(methodBit, method))
            {
                return entry.Route;
            }
        }

        return null;
    }
}
