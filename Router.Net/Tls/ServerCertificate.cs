using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Router.Net.Tls;

/// <summary>
/// One loaded server certificate: the leaf with its private key, the chain context SslStream sends, and the
/// server options built once and handed to every handshake that picks this certificate.
/// </summary>
internal sealed class ServerCertificate
{
    /// <summary>What the listener offers in ALPN: HTTP/1.1 only (the router speaks nothing else).</summary>
    private static readonly List<SslApplicationProtocol> s_alpn = [SslApplicationProtocol.Http11];

    private ServerCertificate(X509Certificate2 leaf, SslStreamCertificateContext context, string[] names, byte[] contentHash)
    {
        Leaf = leaf;
        Context = context;
        Names = names;
        ContentHash = contentHash;
        Options = new SslServerAuthenticationOptions
        {
            ServerCertificateContext = context,
            // TLS 1.0/1.1 are deprecated (RFC 8996); SslProtocols.None would let the OS policy decide, we pin it.
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            ApplicationProtocols = s_alpn,
            ClientCertificateRequired = false,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            // Session resumption (tickets / session ids). On by default; said explicitly because it is what makes
            // repeat handshakes cheap. On Linux the session cache lives in the SSL_CTX tied to the certificate context.
            AllowTlsResume = true,
        };
    }

    public X509Certificate2 Leaf { get; }

    public SslStreamCertificateContext Context { get; }

    public SslServerAuthenticationOptions Options { get; }

    /// <summary>DNS names from the certificate (SAN, else CN), lower case; wildcards as <c>*.suffix</c>.</summary>
    public string[] Names { get; }

    /// <summary>SHA-256 over the cert and key file bytes: a reload with the same hash reuses this object.</summary>
    public byte[] ContentHash { get; }

    /// <summary>
    /// Loads a PEM certificate (chain: leaf first, then intermediates) and its PEM private key. Throws
    /// <see cref="CertificateLoadException"/> saying which file is at fault.
    /// </summary>
    public static ServerCertificate Load(string certFile, string keyFile, ServerCertificate? previous)
    {
        string certPem = ReadFile(certFile, CertificateFile.Cert);
        string keyPem = ReadFile(keyFile, CertificateFile.Key);
        var hash = Hash(certPem, keyPem);
        if (previous is not null && hash.AsSpan().SequenceEqual(previous.ContentHash))
        {
            return previous;
        }

        var (leaf, chain) = LoadPair(certPem, keyPem, certFile, keyFile);
        // offline: true builds the chain from what the file gave us, without fetching intermediates (AIA) at load time.
        var context = SslStreamCertificateContext.Create(leaf, chain, offline: true);
        return new ServerCertificate(leaf, context, NamesOf(leaf), hash);
    }

    /// <summary>Loads a cert + key pair (client certificates of upstream mTLS use the same rules).</summary>
    public static (X509Certificate2 Leaf, X509Certificate2Collection Chain) LoadPair(string certPem, string keyPem, string certFile, string keyFile)
    {
        var all = new X509Certificate2Collection();
        try
        {
            all.ImportFromPem(certPem);
        }
        catch (CryptographicException ex)
        {
            throw new CertificateLoadException(CertificateFile.Cert, $"'{certFile}' is not a PEM certificate: {ex.Message}");
        }

        if (all.Count == 0)
        {
            throw new CertificateLoadException(CertificateFile.Cert, $"'{certFile}' holds no PEM certificate");
        }

        if (!keyPem.Contains("PRIVATE KEY-----", StringComparison.Ordinal))
        {
            throw new CertificateLoadException(CertificateFile.Key, $"'{keyFile}' holds no PEM private key");
        }

        X509Certificate2 withKey;
        try
        {
            withKey = X509Certificate2.CreateFromPem(certPem, keyPem);
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            throw new CertificateLoadException(CertificateFile.Key, $"'{keyFile}' is not the private key of '{certFile}' (or is unreadable): {ex.Message}");
        }

        // On Linux OpenSSL uses the ephemeral key CreateFromPem gives as is; Windows SChannel would need a PKCS#12
        // round trip (Export + X509CertificateLoader.LoadPkcs12) for a persisted key. Do it only there.
        if (OperatingSystem.IsWindows())
        {
            var pfx = withKey.Export(X509ContentType.Pkcs12);
            withKey.Dispose();
            withKey = X509CertificateLoader.LoadPkcs12(pfx, null);
        }

        var chain = new X509Certificate2Collection();
        for (int i = 1; i < all.Count; i++)
        {
            chain.Add(all[i]);
        }

        return (withKey, chain);
    }

    internal static string ReadFile(string path, CertificateFile which)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new CertificateLoadException(which, $"cannot read '{path}': {ex.Message}");
        }
    }

    private static byte[] Hash(string certPem, string keyPem)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(System.Text.Encoding.UTF8.GetBytes(certPem));
        sha.AppendData([0]);
        sha.AppendData(System.Text.Encoding.UTF8.GetBytes(keyPem));
        return sha.GetHashAndReset();
    }

    private static string[] NamesOf(X509Certificate2 certificate)
    {
        var names = new List<string>();
        foreach (var extension in certificate.Extensions)
        {
            if (extension is X509SubjectAlternativeNameExtension san)
            {
                foreach (var name in san.EnumerateDnsNames())
                {
                    names.Add(name.ToLowerInvariant());
                }
            }
        }

        if (names.Count == 0)
        {
            // No SAN: the CN is the name (legacy certificates).
            var cn = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
            if (!string.IsNullOrEmpty(cn))
            {
                names.Add(cn.ToLowerInvariant());
            }
        }

        return [.. names];
    }
}

internal enum CertificateFile
{
    Cert,
    Key,
}

/// <summary>A certificate or key file could not be used; says which one.</summary>
internal sealed class CertificateLoadException : Exception
{
    public CertificateLoadException(CertificateFile file, string message)
        : base(message)
    {
        File = file;
    }

    public CertificateFile File { get; }
}
