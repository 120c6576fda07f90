using System.Buffers.Binary;
using System.Net;
using System.Text;

namespace Router.Net.Transport;

/// <summary>A peer's IP address as ASCII bytes, formatted once per connection for X-Forwarded-For and the access log.</summary>
internal static class AddressText
{
    private const ushort AfInet = 2;
    private const ushort AfInet6 = 10;

    private static readonly byte[] s_unknown = "unknown"u8.ToArray();

    public static byte[] Format(EndPoint? endPoint) => endPoint is IPEndPoint ip ? Format(ip.Address) : s_unknown;

    /// <summary>
    /// From a Linux <c>sockaddr_in</c>/<c>sockaddr_in6</c> as accept4 filled it in; an IPv4-mapped IPv6 address reads
    /// as IPv4, and an IPv6 scope id is kept. IPv4 is formatted by hand, so accepting allocates nothing but the result.
    /// </summary>
    public static byte[] Format(ReadOnlySpan<byte> sockaddr)
    {
        if (sockaddr.Length < 2)
        {
            return s_unknown;
        }

        ushort family = BinaryPrimitives.ReadUInt16LittleEndian(sockaddr);
        if (family == AfInet && sockaddr.Length >= 8)
        {
            return FormatIPv4(sockaddr.Slice(4, 4));
        }

        if (family == AfInet6 && sockaddr.Length >= 24)
        {
            var bytes = sockaddr.Slice(8, 16);
            if (bytes[..10].IndexOfAnyExcept((byte)0) < 0 && bytes[10] == 0xff && bytes[11] == 0xff)
            {
                return FormatIPv4(bytes[12..]);
            }

            // A link-local client carries its interface (fe80::1%2), as the runtime's endpoint would show it.
            uint scope = sockaddr.Length >= 28 ? BinaryPrimitives.ReadUInt32LittleEndian(sockaddr.Slice(24, 4)) : 0;
            return Format(new IPAddress(bytes, scope));
        }

        return s_unknown;
    }

    private static byte[] Format(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        // Formatted straight to ASCII bytes: IPAddress.ToString() would cache a string in the address, kept for the
        // connection's life.
        Span<byte> text = stackalloc byte[64];
        return address.TryFormat(text, out int written) ? text[..written].ToArray() : Encoding.ASCII.GetBytes(address.ToString());
    }

    private static byte[] FormatIPv4(ReadOnlySpan<byte> address)
    {
        Span<byte> text = stackalloc byte[15];
        int length = 0;
        for (int i = 0; i < 4; i++)
        {
            if (i > 0)
            {
                text[length++] = (byte)'.';
            }

            int value = address[i];
            if (value >= 100)
            {
                text[length++] = (byte)('0' + (value / 100));
            }

            if (value >= 10)
            {
                text[length++] = (byte)('0' + (value / 10 % 10));
            }

            text[length++] = (byte)('0' + (value % 10));
        }

        return text[..length].ToArray();
    }
}
