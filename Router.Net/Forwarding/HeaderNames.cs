using System.Text;
using Router.Net.Http1;

namespace Router.Net.Forwarding;

/// <summary>What the forwarder does with a header it copies between hops.</summary>
internal enum HeaderDisposition : byte
{
    /// <summary>End-to-end: copy it.</summary>
    Copy,

    /// <summary>Hop-by-hop (RFC 9110 §7.6.1): drop it.</summary>
    Drop,
    Upgrade,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    Host,

    /// <summary>Framing: written once, normalised, so the next hop can't read the framing differently (RFC 9112 §6.3).</summary>
    ContentLength,
    TransferEncoding,
}

/// <summary>Recognises the few headers the forwarder acts on: length first, then one ASCII case-insensitive compare.</summary>
internal static class HeaderNames
{
    public static HeaderDisposition Classify(ReadOnlySpan<byte> name)
    {
        switch (name.Length)
        {
            case 2:
                return Ascii.EqualsIgnoreCase(name, "TE"u8) ? HeaderDisposition.Drop : HeaderDisposition.Copy;
            case 4:
                return Ascii.EqualsIgnoreCase(name, "Host"u8) ? HeaderDisposition.Host : HeaderDisposition.Copy;
            case 7:
                if (Ascii.EqualsIgnoreCase(name, "Upgrade"u8))
                {
                    return HeaderDisposition.Upgrade;
                }

                return Ascii.EqualsIgnoreCase(name, "Trailer"u8) ? HeaderDisposition.Drop : HeaderDisposition.Copy;
            case 10:
                if (Ascii.EqualsIgnoreCase(name, "Connection"u8) || Ascii.EqualsIgnoreCase(name, "Keep-Alive"u8))
                {
                    return HeaderDisposition.Drop;
                }

                break;
            case 14:
                if (Ascii.EqualsIgnoreCase(name, "Content-Length"u8))
                {
                    return HeaderDisposition.ContentLength;
                }

                break;
            case 15:
                if (Ascii.EqualsIgnoreCase(name, "X-Forwarded-For"u8))
                {
                    return HeaderDisposition.XForwardedFor;
                }

                break;
            case 16:
                if (Ascii.EqualsIgnoreCase(name, "X-Forwarded-Host"u8))
                {
                    return HeaderDisposition.XForwardedHost;
                }

                break;
            case 17:
                if (Ascii.EqualsIgnoreCase(name, "X-Forwarded-Proto"u8))
                {
                    return HeaderDisposition.XForwardedProto;
                }

                if (Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8))
                {
                    return HeaderDisposition.TransferEncoding;
                }

                break;
        }

        // Proxy-Connection, Proxy-Authorization, Proxy-Authenticate, ...: meant for a proxy, never forwarded.
        if (name.Length > 6 && Ascii.EqualsIgnoreCase(name[..6], "Proxy-"u8))
        {
            return HeaderDisposition.Drop;
        }

        return HeaderDisposition.Copy;
    }

    /// <summary>True when a Connection header of the message lists <paramref name="name"/> (so it is hop-by-hop).</summary>
    public static bool IsNamedByConnection(byte[] buffer, HeaderField[] headers, int count, ReadOnlySpan<byte> name)
    {
        for (int i = 0; i < count; i++)
        {
            var field = headers[i];
            var fieldName = buffer.AsSpan(field.Name.Start, field.Name.Length);
            if (fieldName.Length != 10 || !Ascii.EqualsIgnoreCase(fieldName, "Connection"u8))
            {
                continue;
            }

            var value = buffer.AsSpan(field.Value.Start, field.Value.Length);
            while (!value.IsEmpty)
            {
                int comma = value.IndexOf((byte)',');
                var token = (comma < 0 ? value : value[..comma]).Trim(" \t"u8);
                if (Ascii.EqualsIgnoreCase(token, name))
                {
                    return true;
                }

                value = comma < 0 ? default : value[(comma + 1)..];
            }
        }

        return false;
    }
}
