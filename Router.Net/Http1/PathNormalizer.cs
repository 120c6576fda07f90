using Router.Net.Transport;

namespace Router.Net.Http1;

/// <summary>
/// Removes dot segments from a request's path (RFC 3986 §5.2.4), before routing sees it. Otherwise
/// <c>/public/../admin</c> would be routed by its <c>/public</c> prefix and then read as <c>/admin</c> by the upstream,
/// past a route meant to keep it out. A segment of dots written percent-encoded (<c>%2e</c>, unreserved, so the same
/// character: RFC 3986 §6.2.2.2) counts too, since upstreams decode it. The upstream gets the path that was routed.
/// Nothing else is rewritten: empty segments (<c>//</c>) and encoded slashes (<c>%2F</c>) stay as they came.
/// </summary>
internal static class PathNormalizer
{
    /// <summary>
    /// Whether the path has a segment that may be a dot segment: "/." or "/%2" somewhere. Most paths have no '.' or '%'
    /// at all, and one vector scan says so.
    /// </summary>
    public static bool MayHaveDotSegment(ReadOnlySpan<byte> path) =>
        path.IndexOfAny((byte)'.', (byte)'%') >= 0 && (path.IndexOf("/."u8) >= 0 || path.IndexOf("/%2"u8) >= 0);

    /// <summary>
    /// Writes the normalised path after the head in <see cref="HttpRequestHead.Buffer"/> (growing it if needed) and
    /// points <see cref="HttpRequestHead.Path"/> at it. The target as received stays intact, for the access log.
    /// </summary>
    public static void Normalize(HttpRequestHead head)
    {
        int start = head.Length;
        int length = head.Path.Length;
        if (head.Buffer.Length < start + length)
        {
            var old = head.Buffer;
            head.Buffer = PooledBytes.Rent(start + length);
            old.AsSpan(0, start).CopyTo(head.Buffer);
            PooledBytes.Return(old);
        }

        head.Buffer.AsSpan(head.Path.Start, length).CopyTo(head.Buffer.AsSpan(start));
        head.Path = new HeadSegment(start, RemoveDotSegments(head.Buffer.AsSpan(start, length)));
    }

    /// <summary>RFC 3986 §5.2.4 on an absolute path, in place; returns the new length. "/a/b/../c" → "/a/c", "/.." → "/".</summary>
    public static int RemoveDotSegments(Span<byte> path)
    {
        int written = 0;
        int read = 0; // at a '/'
        while (read < path.Length)
        {
            int segmentStart = read + 1;
            int next = path[segmentStart..].IndexOf((byte)'/');
            int segmentEnd = next < 0 ? path.Length : segmentStart + next;
            bool last = next < 0;
            switch (Dots(path[segmentStart..segmentEnd]))
            {
                case 1:
                    // "." goes; as the last segment it leaves the directory: "/a/." → "/a/".
                    break;
                case 2:
                    // ".." takes the output's last segment with it (none above the root).
                    written = Math.Max(0, path[..written].LastIndexOf((byte)'/'));
                    break;
                default:
                    // Moving left over bytes already read: CopyTo is a memmove.
                    path[written++] = (byte)'/';
                    path[segmentStart..segmentEnd].CopyTo(path[written..]);
                    written += segmentEnd - segmentStart;
                    read = segmentEnd;
                    continue;
            }

            if (last)
            {
                path[written++] = (byte)'/';
            }

            read = segmentEnd;
        }

        return written;
    }

    /// <summary>
    /// 1 for ".", 2 for "..", each dot written as '.' or %2e (either case); 0 for any other segment. Parameters after
    /// a ';' do not count (RFC 2396 §3.3): Java servers read "..;x" as "..", so "/public/..;/admin" would reach /admin.
    /// </summary>
    private static int Dots(ReadOnlySpan<byte> segment)
    {
        int parameters = segment.IndexOf((byte)';');
        if (parameters >= 0)
        {
            segment = segment[..parameters];
        }

        int dots = 0;
        int i = 0;
        while (i < segment.Length)
        {
            if (segment[i] == (byte)'.')
            {
                i++;
            }
            else if (i + 2 < segment.Length && segment[i] == (byte)'%' && segment[i + 1] == (byte)'2' && (segment[i + 2] | 0x20) == (byte)'e')
            {
                i += 3;
            }
            else
            {
                return 0;
            }

            if (++dots > 2)
            {
                return 0;
            }
        }

        return dots;
    }
}
