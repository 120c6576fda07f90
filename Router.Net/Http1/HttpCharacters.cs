using System.Buffers;

namespace Router.Net.Http1;

/// <summary>Byte classes from RFC 9110 §5.6 / RFC 3986, as vectorised <see cref="SearchValues{T}"/>.</summary>
internal static class HttpCharacters
{
    private const string Alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

    /// <summary>tchar: field names, methods, transfer codings.</summary>
    public static readonly SearchValues<byte> Token = SearchValues.Create(Ascii(Alphanumeric + "!#$%&'*+-.^_`|~"));

    /// <summary>tchar without '_': a field name with an underscore is found by the same scan that validates it.</summary>
    public static readonly SearchValues<byte> TokenWithoutUnderscore = SearchValues.Create(Ascii(Alphanumeric + "!#$%&'*+-.^`|~"));

    /// <summary>field-vchar, SP and HTAB (obs-text included): what a trimmed field value may hold. No CR, LF, NUL, DEL.</summary>
    public static readonly SearchValues<byte> FieldValue = SearchValues.Create(Range(0x20, 0x7E, 0x80, 0xFF, extra: (byte)'\t'));

    /// <summary>
    /// Request-target bytes: visible ASCII except '#' (fragments are never sent), plus obs-text, which nginx and
    /// Kestrel accept in paths and we forward verbatim. Controls, SP and DEL are rejected.
    /// </summary>
    public static readonly SearchValues<byte> Target = SearchValues.Create(Without(Range(0x21, 0x7E, 0x80, 0xFF, extra: null), (byte)'#'));

    /// <summary><see cref="Target"/> without '\', which is only allowed in the query: the scan that validates a target finds it.</summary>
    public static readonly SearchValues<byte> TargetWithoutBackslash = SearchValues.Create(Without(Range(0x21, 0x7E, 0x80, 0xFF, extra: null), (byte)'#', (byte)'\\'));

    /// <summary>Authority bytes (reg-name / IP-literal / port; RFC 3986 §3.2.2). No userinfo: '@' is rejected.</summary>
    public static readonly SearchValues<byte> Host = SearchValues.Create(Ascii(Alphanumeric + "-._~!$&'()*+,;=%:[]"));

    /// <summary>reg-name bytes without pct-encoded (RFC 3986 §3.2.2): unreserved and sub-delims.</summary>
    public static readonly SearchValues<byte> RegName = SearchValues.Create(Ascii(Alphanumeric + "-._~!$&'()*+,;="));

    /// <summary>What an IPv6 address (with an IPv4 tail) is written with between the brackets of an IP-literal.</summary>
    public static readonly SearchValues<byte> Ipv6 = SearchValues.Create(Ascii("0123456789abcdefABCDEF:."));

    private static byte[] Ascii(string chars)
    {
        var bytes = new byte[chars.Length];
        for (var i = 0; i < chars.Length; i++)
        {
            bytes[i] = (byte)chars[i];
        }

        return bytes;
    }

    private static byte[] Range(int from1, int to1, int from2, int to2, byte? extra)
    {
        var list = new List<byte>();
        for (var b = from1; b <= to1; b++)
        {
            list.Add((byte)b);
        }

        for (var b = from2; b <= to2; b++)
        {
            list.Add((byte)b);
        }

        if (extra is { } e)
        {
            list.Add(e);
        }

        return [.. list];
    }

    private static byte[] Without(byte[] bytes, params byte[] removed) => Array.FindAll(bytes, b => Array.IndexOf(removed, b) < 0);
}
