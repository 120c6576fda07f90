using System.Security.Cryptography;
using System.Text;

namespace Router.ControlPlane.Api;

/// <summary>Checks <c>Authorization: Bearer &lt;token&gt;</c> in constant time.</summary>
internal static class BearerToken
{
    private const string Scheme = "Bearer ";

    public static bool Matches(HttpRequest request, string expected)
    {
        var header = request.Headers.Authorization.ToString();
        if (expected.Length == 0 || !header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var presented = header.AsSpan(Scheme.Length).Trim();
        return CryptographicOperations.FixedTimeEquals(
            SHA256.HashData(Encoding.UTF8.GetBytes(presented.ToString())),
            SHA256.HashData(Encoding.UTF8.GetBytes(expected)));
    }
}
