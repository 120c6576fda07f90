using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;

namespace Router.Core.Routing;

/// <summary>Parses a destination address <c>host:port</c> into the endpoint the data plane connects to.</summary>
internal static class DestinationAddress
{
    /// <summary>
    /// <c>1.2.3.4:80</c> and <c>[::1]:80</c> become an <see cref="IPEndPoint"/>; <c>localhost:80</c> becomes
    /// 127.0.0.1 (no resolver round trip, and no surprise ::1 when the upstream listens on IPv4 only);
    /// any other name becomes a <see cref="DnsEndPoint"/>. The port is required (1-65535).
    /// </summary>
    public static bool TryParse(string address, [NotNullWhen(true)] out EndPoint? endPoint)
    {
        endPoint = null;
        address = address.Trim();
        string host;
        string port;
        if (address.StartsWith('['))
        {
            var close = address.IndexOf("]:", StringComparison.Ordinal);
            if (close < 0)
            {
                return false;
            }

            host = address[1..close];
            port = address[(close + 2)..];
        }
        else
        {
            var colon = address.LastIndexOf(':');
            if (colon <= 0 || address.IndexOf(':') != colon)
            {
                return false;
            }

            host = address[..colon];
            port = address[(colon + 1)..];
        }

        if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var portNumber)
            || portNumber is < 1 or > IPEndPoint.MaxPort
            || host.Length == 0)
        {
            return false;
        }

        if (IPAddress.TryParse(host, out var ip))
        {
            endPoint = new IPEndPoint(ip, portNumber);
        }
        else if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            endPoint = new IPEndPoint(IPAddress.Loopback, portNumber);
        }
        else
        {
            endPoint = new DnsEndPoint(host, portNumber);
        }

        return true;
    }

    public static EndPoint Parse(string address) =>
        TryParse(address, out var endPoint)
            ? endPoint
            : throw new FormatException($"Destination address '{address}' is not host:port.");
}
