using System.Runtime.CompilerServices;
using System.Text;

namespace Router.Core.Routing;

/// <summary>
/// Matches a request's host, path and method to a route. Immutable once built; a match takes no lock and
/// allocates nothing, and its cost does not grow with the number of hosts.
/// </summary>
/// <remarks>
/// Precedence, first match wins:
/// <list type="number">
/// <item>Host group: the exact host, then wildcard groups from the most specific suffix
/// (<c>*.b.example.test</c>) to the least (<c>*.test</c>), then routes without hosts (any host).
/// A request falls through to the next group when its group has no route for the path and method.</item>
/// <item>Within a group: longest path prefix (case-sensitive byte prefix, so <c>/api</c> also matches <c>/apix</c>).</item>
/// <item>Same prefix: a route with a method filter before one without; then config order.</item>
/// </list>
/// Hosts compare ASCII-case-insensitively, with any <c>:port</c> and one trailing dot ignored;
/// <c>[v6]:port</c> compares as <c>v6</c>. <c>*.example.test</c> matches any name below
/// <c>example.test</c> (<c>a.example.test</c>, <c>a.b.example.test</c>) but not <c>example.test</c> itself.
/// </remarks>
internal sealed class RouteMatcher
{
    private const int MaxWildcardHits = 8;

    private readonly HostTable<RouteGroup> _exact;
    private readonly HostTable<RouteGroup> _wildcard;
    private readonly RouteGroup? _anyHost;

    private RouteMatcher(HostTable<RouteGroup> exact, HostTable<RouteGroup> wildcard, RouteGroup? anyHost)
    {
        _exact = exact;
        _wildcard = wildcard;
        _anyHost = anyHost;
    }

    public static RouteMatcher Build(IReadOnlyList<CompiledRoute> routes)
    {
        var exact = new Dictionary<string, List<RouteEntry>>(StringComparer.Ordinal);
        var wildcard = new Dictionary<string, List<RouteEntry>>(StringComparer.Ordinal);
        var anyHost = new List<RouteEntry>();

        foreach (var route in routes)
        {
            var entry = CreateEntry(route);
            var hosts = route.Config.Match.Hosts;
            if (hosts.Count == 0)
            {
                anyHost.Add(entry);
                continue;
            }

            foreach (var host in hosts)
            {
                var key = NormalizeConfigHost(host, out var kind);
                var list = kind switch
                {
                    HostKind.Exact => GetOrAdd(exact, key),
                    HostKind.Wildcard => GetOrAdd(wildcard, key),
                    _ => anyHost,
                };

                // A route listing the same host twice ("a.test", "A.test.") belongs to that group once.
                if (list.Count == 0 || !ReferenceEquals(list[^1].Route, route))
                {
                    list.Add(entry);
                }
            }
        }

        return new RouteMatcher(
            new HostTable<RouteGroup>(ToGroups(exact)),
            new HostTable<RouteGroup>(ToGroups(wildcard)),
            anyHost.Count == 0 ? null : ToGroup(anyHost));
    }

    public CompiledRoute? Match(ReadOnlySpan<byte> host, ReadOnlySpan<byte> path, ReadOnlySpan<byte> method)
    {
        var methodBit = RouteMethods.Parse(method);
        host = NormalizeRequestHost(host, out var isIpLiteral);

        // One right-to-left pass hashes the whole host for the exact table and, at each dot, the suffix
        // starting there for the wildcard table. Hits arrive shortest suffix first.
        var hits = default(WildcardHits);
        var hitCount = 0;
        var state = HostTable<RouteGroup>.Start;
        var wildcard = _wildcard;
        var lookForWildcards = wildcard.Count != 0 && !isIpLiteral;
        for (var i = host.Length - 1; i >= 0; i--)
        {
            var b = host[i];
            state = HostTable<RouteGroup>.Step(state, b);
            if (b == '.' && lookForWildcards && i > 0)
            {
                var suffixLength = host.Length - i;
                if (suffixLength > wildcard.MaxKeyLength)
                {
                    lookForWildcards = false;  // suffixes only get longer from here
                    continue;
                }

                if (suffixLength >= wildcard.MinKeyLength
                    && wildcard.Find(host[i..], HostTable<RouteGroup>.Finish(state)) is { } group)
                {
                    if (hitCount == MaxWildcardHits)
                    {
                        // More nested wildcards than slots: keep the most specific ones.
                        ((Span<RouteGroup?>)hits)[1..].CopyTo(hits);
                        hitCount--;
                    }

                    hits[hitCount++] = group;
                }
            }
        }

        if (_exact.Count != 0
            && _exact.Find(host, HostTable<RouteGroup>.Finish(state))?.Match(path, methodBit, method) is { } exactRoute)
        {
            return exactRoute;
        }

        for (var h = hitCount - 1; h >= 0; h--)
        {
            if (hits[h]!.Match(path, methodBit, method) is { } wildcardRoute)
            {
                return wildcardRoute;
            }
        }

        return _anyHost?.Match(path, methodBit, method);
    }

    /// <summary>Strips <c>:port</c>, IPv6 brackets and one trailing dot from a Host header value.</summary>
    internal static ReadOnlySpan<byte> NormalizeRequestHost(ReadOnlySpan<byte> host, out bool isIpLiteral)
    {
        isIpLiteral = false;
        if (!host.IsEmpty && host[0] == '[')
        {
            var end = host.IndexOf((byte)']');
            isIpLiteral = true;
            return end < 0 ? host[1..] : host[1..end];
        }

        var colon = host.IndexOf((byte)':');
        if (colon >= 0)
        {
            host = host[..colon];
        }

        if (!host.IsEmpty && host[^1] == '.')
        {
            host = host[..^1];
        }

        return host;
    }

    private enum HostKind
    {
        Exact,
        Wildcard,
        Any,
    }

    private static string NormalizeConfigHost(string host, out HostKind kind)
    {
        host = host.Trim();
        if (host == "*")
        {
            kind = HostKind.Any;
            return host;
        }

        if (host.StartsWith("*.", StringComparison.Ordinal))
        {
            kind = HostKind.Wildcard;
            host = host[1..];  // keep the dot: ".example.test" is the suffix to look up
        }
        else
        {
            kind = HostKind.Exact;
        }

        var bytes = Encoding.UTF8.GetBytes(host);
        var normalized = NormalizeRequestHost(bytes, out _);
        return LowerAscii(Encoding.UTF8.GetString(normalized));
    }

    private static string LowerAscii(string value)
    {
        var chars = value.ToCharArray();
        for (var i = 0; i < chars.Length; i++)
        {
            if ((uint)(chars[i] - 'A') <= 'Z' - 'A')
            {
                chars[i] = (char)(chars[i] | 0x20);
            }
        }

        return new string(chars);
    }

    private static RouteEntry CreateEntry(CompiledRoute route)
    {
        var match = route.Config.Match;
        var prefix = Encoding.UTF8.GetBytes(string.IsNullOrEmpty(match.PathPrefix) ? "/" : match.PathPrefix);
        if (match.Methods.Count == 0)
        {
            return new RouteEntry(route, prefix, RouteMethods.Any, null);
        }

        var mask = 0;
        List<byte[]>? custom = null;
        foreach (var method in match.Methods)
        {
            // Config may say "get"; a known method is meant whatever its case. Custom methods match as written.
            var bit = RouteMethods.Parse(Encoding.UTF8.GetBytes(method.Trim().ToUpperInvariant()));
            mask |= bit;
            if (bit == RouteMethods.Custom)
            {
                (custom ??= []).Add(Encoding.UTF8.GetBytes(method.Trim()));
            }
        }

        return new RouteEntry(route, prefix, mask, custom?.ToArray());
    }

    private static List<RouteEntry> GetOrAdd(Dictionary<string, List<RouteEntry>> groups, string key)
    {
        if (!groups.TryGetValue(key, out var list))
        {
            list = [];
            groups.Add(key, list);
        }

        return list;
    }

    private static Dictionary<string, RouteGroup> ToGroups(Dictionary<string, List<RouteEntry>> lists)
    {
        var groups = new Dictionary<string, RouteGroup>(lists.Count, StringComparer.Ordinal);
        foreach (var (key, list) in lists)
        {
            groups.Add(key, ToGroup(list));
        }

        return groups;
    }

    private static RouteGroup ToGroup(List<RouteEntry> entries)
    {
        // Entries arrive in config order; a stable sort keeps it as the last tie-breaker.
        var sorted = new RouteEntry[entries.Count];
        var order = new int[entries.Count];
        for (var i = 0; i < sorted.Length; i++)
        {
            sorted[i] = entries[i];
            order[i] = i;
        }

        Array.Sort(order, (a, b) =>
        {
            var x = sorted[a];
            var y = sorted[b];
            var byPrefix = y.PathPrefix.Length.CompareTo(x.PathPrefix.Length);
            if (byPrefix != 0)
            {
                return byPrefix;
            }

            var byMethod = (x.MethodMask == RouteMethods.Any).CompareTo(y.MethodMask == RouteMethods.Any);
            return byMethod != 0 ? byMethod : a.CompareTo(b);
        });

        var result = new RouteEntry[sorted.Length];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = sorted[order[i]];
        }

        return new RouteGroup(result);
    }

    [InlineArray(MaxWildcardHits)]
    private struct WildcardHits
    {
        private RouteGroup? _element;
    }
}
