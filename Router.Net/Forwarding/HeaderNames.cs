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

    /// <summary>
    /// What a client says about the path to us, which only the router may say upstream: X-Forwarded-* but For (which
    /// gets our address appended), Forwarded and X-Real-IP. Not forwarded in a request; a response keeps it.
    /// </summary>
    ForwardingClaim,
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
            case 9:
                // Forwarded (RFC 7239) is dropped, not appended to: Rack 3 and Spring prefer it to X-Forwarded-*, and
                // Spring reads its first element, which would still be the client's.
                if (Ascii.EqualsIgnoreCase(name, "Forwarded"u8) || Ascii.EqualsIgnoreCase(name, "X-Real-IP"u8))
                {
                    return HeaderDisposition.ForwardingClaim;
                }

                break;
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
            case 17:
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

        // X-Forwarded-Proto, -Host, -Port, -Ssl, -Scheme, -Prefix...: frameworks build URLs and decide "https" from them
        // (Rack reads X-Forwarded-Ssl: on before X-Forwarded-Proto), so a client's own never goes up beside ours.
        if (name.Length > 12 && (name[0] | 0x20) == 'x' && Ascii.EqualsIgnoreCase(name[..12], "X-Forwarded-"u8))
        {
            return HeaderDisposition.ForwardingClaim;
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
