using System.Net.Security;

namespace Router.Net.Tls;

/// <summary>
/// The server certificates of one TLS listener and the SNI name -> certificate map. Immutable: a reload builds a new
/// store and swaps it in, so a handshake reads one consistent store without a lock.
/// </summary>
/// <remarks>
/// Names come from a certificate's configured <c>hosts</c>, or from its SAN DNS names (CN when it has no SAN) when
/// <c>hosts</c> is empty. An exact name wins over a wildcard; among wildcards the longest suffix wins, and a
/// wildcard matches any depth (<c>*.example.com</c> matches <c>a.b.example.com</c>), as route host matching does.
/// An unknown or missing SNI name gets the default certificate, or fails the handshake when
/// <see cref="RejectUnknownSni"/> is set.
/// </remarks>
internal sealed class CertificateStore
{
    private readonly Dictionary<string, ServerCertificate> _exact;
    private readonly Dictionary<string, ServerCertificate> _wildcard; // keyed by ".suffix"
    private readonly Dictionary<string, ServerCertificate>.AlternateLookup<ReadOnlySpan<char>> _exactLookup;
    private readonly Dictionary<string, ServerCertificate>.AlternateLookup<ReadOnlySpan<char>> _wildcardLookup;

    public CertificateStore(IReadOnlyList<ServerCertificate> certificates, IReadOnlyList<IReadOnlyList<string>> hosts, int defaultIndex, bool rejectUnknownSni)
    {
        Certificates = certificates;
        Default = certificates[defaultIndex];
        RejectUnknownSni = rejectUnknownSni;
        _exact = new Dictionary<string, ServerCertificate>(StringComparer.OrdinalIgnoreCase);
        _wildcard = new Dictionary<string, ServerCertificate>(StringComparer.OrdinalIgnoreCase);
        // Configured hosts first, then the names of certificates without hosts: an operator's explicit
        // assignment wins over a name a certificate merely carries. Within a pass the config's order breaks ties.
        for (int pass = 0; pass < 2; pass++)
        {
            for (int i = 0; i < certificates.Count; i++)
            {
                bool configured = hosts[i].Count > 0;
                if (configured != (pass == 0))
                {
                    continue;
                }

                foreach (var name in configured ? hosts[i] : certificates[i].Names)
                {
                    if (name.StartsWith("*.", StringComparison.Ordinal))
                    {
                        _wildcard.TryAdd(name[1..], certificates[i]);
                    }
                    else
                    {
                        _exact.TryAdd(name, certificates[i]);
                    }
                }
            }
        }

        _exactLookup = _exact.GetAlternateLookup<ReadOnlySpan<char>>();
        _wildcardLookup = _wildcard.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public IReadOnlyList<ServerCertificate> Certificates { get; }

    public ServerCertificate Default { get; }

    public bool RejectUnknownSni { get; }

    /// <summary>The certificate for an SNI name, or null when the name is unknown and unknown names are rejected.</summary>
    public ServerCertificate? Select(string? serverName)
    {
        if (string.IsNullOrEmpty(serverName))
        {
            return RejectUnknownSni ? null : Default;
        }

        var name = serverName.AsSpan().TrimEnd('.');
        if (_exactLookup.TryGetValue(name, out var exact))
        {
            return exact;
        }

        if (_wildcard.Count > 0)
        {
            // Longest suffix first: ".b.example.com" before ".example.com".
            for (int dot = name.IndexOf('.'); dot >= 0; dot = NextDot(name, dot))
            {
                if (_wildcardLookup.TryGetValue(name[dot..], out var wildcard))
                {
                    return wildcard;
                }
            }
        }

        return RejectUnknownSni ? null : Default;
    }

    private static int NextDot(ReadOnlySpan<char> name, int dot)
    {
        int next = name[(dot + 1)..].IndexOf('.');
        return next < 0 ? -1 : dot + 1 + next;
    }

    /// <summary>The server options of the certificate for an SNI name (built once per certificate).</summary>
    public SslServerAuthenticationOptions? SelectOptions(string? serverName) => Select(serverName)?.Options;
}
