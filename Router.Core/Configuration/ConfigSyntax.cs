using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Router.Core.Configuration;

/// <summary>
/// Syntax checks for the strings a config holds: endpoints, host patterns, method tokens.
/// Each check returns null when the value is fine, else a plain reason.
/// </summary>
internal static class ConfigSyntax
{
    private const int MaxDnsNameLength = 253;
    private const int MaxLabelLength = 63;

    /// <summary>
    /// Checks <c>host:port</c>: IPv4, <c>[IPv6]</c>, or (when <paramref name="allowDnsName"/>) a DNS name.
    /// <paramref name="key"/> is a normalised form for duplicate detection.
    /// </summary>
    public static string? CheckEndpoint(string value, bool allowDnsName, int minPort, out string key)
    {
        key = value;
        string example = allowDnsName ? "host:port, e.g. 10.0.0.1:8080, [::1]:8080 or app.internal:8080" : "IP:PORT, e.g. 0.0.0.0:8080 or [::]:8080";
        if (value.Length == 0)
        {
            return $"must not be empty; expected {example}";
        }

        string host;
        string portText;
        if (value[0] == '[')
        {
            int close = value.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                return $"'{value}' has '[' without a closing ']'; expected {example}";
            }

            host = value[1..close];
            if (!IPAddress.TryParse(host, out IPAddress? v6) || v6.AddressFamily != AddressFamily.InterNetworkV6)
            {
                return $"'{host}' inside brackets is not a valid IPv6 address";
            }

            if (close + 1 >= value.Length || value[close + 1] != ':')
            {
                return $"'{value}' has no port; expected {example}";
            }

            portText = value[(close + 2)..];
            host = v6.ToString();
        }
        else
        {
            int colon = value.LastIndexOf(':');
            if (colon < 0)
            {
                return $"'{value}' has no port; expected {example}";
            }

            host = value[..colon];
            portText = value[(colon + 1)..];
            if (host.Contains(':', StringComparison.Ordinal))
            {
                return $"'{value}' looks like an IPv6 address; put it in brackets, e.g. [::1]:8080";
            }

            if (host.Length == 0)
            {
                return $"'{value}' has no host; expected {example}";
            }

            if (LooksLikeIPv4(host))
            {
                if (!IsIPv4(host))
                {
                    return $"'{host}' is not a valid IPv4 address";
                }
            }
            else if (!allowDnsName)
            {
                return $"'{host}' is not an IP address; expected {example}";
            }
            else if (CheckDnsName(host) is { } reason)
            {
                return $"'{host}' is not a valid host name: {reason}";
            }

            host = host.ToLowerInvariant();
        }

        if (portText.Length == 0)
        {
            return $"'{value}' has no port; expected {example}";
        }

        if (portText.Length > 5 || !AllDigits(portText))
        {
            return $"'{portText}' is not a valid port; expected a number from {minPort} to 65535";
        }

        int port = int.Parse(portText, CultureInfo.InvariantCulture);
        if (port < minPort || port > 65535)
        {
            return $"port {port} is out of range; expected {minPort} to 65535";
        }

        key = host + ":" + port.ToString(CultureInfo.InvariantCulture);
        return null;
    }

    /// <summary>Checks a route or certificate host pattern: <c>name.example</c> or <c>*.suffix</c>, no port.</summary>
    public static string? CheckHostPattern(string value)
    {
        if (value.Length == 0)
        {
            return "must not be empty";
        }

        if (value.Contains(':', StringComparison.Ordinal))
        {
            return $"'{value}' must not contain a port (the port is ignored when matching)";
        }

        string name = value;
        if (value.StartsWith("*.", StringComparison.Ordinal))
        {
            name = value[2..];
        }

        if (name.Contains('*', StringComparison.Ordinal))
        {
            return $"'{value}' has a misplaced '*'; a wildcard must be the whole leftmost label, e.g. *.example.com";
        }

        if (name.Length == 0)
        {
            return $"'{value}' has nothing after the wildcard";
        }

        return CheckDnsName(name) is { } reason ? $"'{value}' is not a valid host name: {reason}" : null;
    }

    /// <summary>Checks a DNS name: dot-separated labels of letters, digits and '-', no empty labels.</summary>
    public static string? CheckDnsName(string name)
    {
        if (name.Length > MaxDnsNameLength)
        {
            return $"it is longer than {MaxDnsNameLength} characters";
        }

        foreach (string label in name.Split('.'))
        {
            if (label.Length == 0)
            {
                return "it has an empty label (two dots in a row, or a dot at the start or end)";
            }

            if (label.Length > MaxLabelLength)
            {
                return $"the label '{label}' is longer than {MaxLabelLength} characters";
            }

            foreach (char c in label)
            {
                if (!char.IsAsciiLetterOrDigit(c) && c != '-')
                {
                    return $"'{c}' is not allowed; use letters, digits, '-' and '.'";
                }
            }

            if (label[0] == '-' || label[^1] == '-')
            {
                return $"the label '{label}' starts or ends with '-'";
            }
        }

        return null;
    }

    /// <summary>Checks an HTTP method: a non-empty RFC 9110 token.</summary>
    public static string? CheckMethod(string value)
    {
        if (value.Length == 0)
        {
            return "must not be empty";
        }

        foreach (char c in value)
        {
            if (!IsTokenChar(c))
            {
                return $"'{value}' is not a valid HTTP method; '{c}' is not allowed in a method name";
            }
        }

        return null;
    }

    /// <summary>Checks a path prefix (also a health check path): starts with '/', no whitespace, query or fragment.</summary>
    public static string? CheckPath(string value)
    {
        if (value.Length == 0 || value[0] != '/')
        {
            return $"'{value}' must start with '/'";
        }

        foreach (char c in value)
        {
            if (c <= ' ' || c == '\u007f')
            {
                return $"'{value}' must not contain spaces or control characters";
            }

            if (c is '?' or '#')
            {
                return $"'{value}' must not contain '{c}'; it is a path, not a URL with a query or fragment";
            }
        }

        return null;
    }

    private static bool IsTokenChar(char c) =>
        char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c, StringComparison.Ordinal);

    private static bool LooksLikeIPv4(string host)
    {
        foreach (char c in host)
        {
            if (!char.IsAsciiDigit(c) && c != '.')
            {
                return false;
            }
        }

        return true;
    }

    // Strict dotted quad: IPAddress.TryParse also accepts "1" or "1.2.3", which nobody means in a config.
    private static bool IsIPv4(string host)
    {
        string[] parts = host.Split('.');
        if (parts.Length != 4)
        {
            return false;
        }

        foreach (string part in parts)
        {
            if (part.Length is 0 or > 3 || (part.Length > 1 && part[0] == '0')
                || int.Parse(part, CultureInfo.InvariantCulture) > 255)
            {
                return false;
            }
        }

        return true;
    }

    private static bool AllDigits(string text)
    {
        foreach (char c in text)
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        return true;
    }
}
