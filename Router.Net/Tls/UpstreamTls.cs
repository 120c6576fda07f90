using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Router.Core.Configuration;

namespace Router.Net.Tls;

/// <summary>
/// A cluster's upstream TLS settings with their files loaded: the trusted CA roots and the client certificate.
/// One object per distinct setting and file content; pooled connections remember the object they were made with,
/// so a change (new CA, renewed client cert) retires them.
/// </summary>
internal sealed class UpstreamTlsOptions
{
    private static readonly List<SslApplicationProtocol> s_alpn = [SslApplicationProtocol.Http11];

    public UpstreamTlsOptions(UpstreamTlsConfig config, X509Certificate2Collection? trustedRoots, SslStreamCertificateContext? clientCertificate, byte[] contentHash, string? error = null)
    {
        Config = config;
        TrustedRoots = trustedRoots;
        ClientCertificate = clientCertificate;
        ContentHash = contentHash;
        Error = error;
    }

    public UpstreamTlsConfig Config { get; }

    /// <summary>CA certificates trusted instead of the system store; null uses the system store.</summary>
    public X509Certificate2Collection? TrustedRoots { get; }

    public SslStreamCertificateContext? ClientCertificate { get; }

    public byte[] ContentHash { get; }

    /// <summary>Why the files could not be loaded; connections then fail (502) instead of going out in clear text.</summary>
    public string? Error { get; }

    /// <summary>Client options for one connection to <paramref name="destination"/> (connects are rare: connections are pooled).</summary>
    public SslClientAuthenticationOptions CreateClientOptions(EndPoint destination)
    {
        string host = Config.ServerName ?? destination switch
        {
            DnsEndPoint dns => dns.Host,
            IPEndPoint ip => ip.Address.ToString(),
            _ => destination.ToString() ?? "",
        };

        var options = new SslClientAuthenticationOptions
        {
            // SNI and the name the upstream certificate must carry (an IP address is checked against IP SANs).
            TargetHost = host,
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            ApplicationProtocols = s_alpn,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            ClientCertificateContext = ClientCertificate,
        };

        if (TrustedRoots is not null)
        {
            // The configured CA is the only trust anchor; the chain and the name are still validated.
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(TrustedRoots);
            options.CertificateChainPolicy = policy;
        }

        return options;
    }
}

/// <summary>
/// Loads and caches <see cref="UpstreamTlsOptions"/> per distinct <see cref="UpstreamTlsConfig"/>. Files are read when
/// a config is validated (a bad CA or client key rejects the config); the request path only looks options up.
/// </summary>
internal sealed class UpstreamTlsRegistry
{
    private readonly Lock _gate = new();
    private Dictionary<UpstreamTlsConfig, UpstreamTlsOptions> _options = [];

    /// <summary>The loaded options of a cluster's TLS settings, or null for plain HTTP.</summary>
    public UpstreamTlsOptions? For(UpstreamTlsConfig? config)
    {
        if (config is null || !config.Enabled)
        {
            return null;
        }

        if (Volatile.Read(ref _options).TryGetValue(config, out var options))
        {
            return options;
        }

        // Not validated through the applier (an embedder compiled a snapshot directly): load now, once.
        var errors = new List<ConfigError>();
        return Prepare(config, "$.tls", errors);
    }

    /// <summary>Loads every cluster's TLS files; returns the errors that must reject the config.</summary>
    public IReadOnlyList<ConfigError> Validate(RouterConfig config)
    {
        var errors = new List<ConfigError>();
        for (int i = 0; i < config.Clusters.Count; i++)
        {
            if (config.Clusters[i]?.Tls is { Enabled: true } tls)
            {
                Prepare(tls, $"$.clusters[{i}].tls", errors);
            }
        }

        return errors;
    }

    private UpstreamTlsOptions Prepare(UpstreamTlsConfig config, string path, List<ConfigError> errors)
    {
        lock (_gate)
        {
            _options.TryGetValue(config, out var previous);
            var loaded = Load(config, path, previous, errors);
            if (!ReferenceEquals(loaded, previous) && loaded.Error is null)
            {
                var next = new Dictionary<UpstreamTlsConfig, UpstreamTlsOptions>(_options) { [config] = loaded };
                Volatile.Write(ref _options, next);
            }

            return loaded;
        }
    }

    private static UpstreamTlsOptions Load(UpstreamTlsConfig config, string path, UpstreamTlsOptions? previous, List<ConfigError> errors)
    {
        string? caPem = null;
        string? certPem = null;
        string? keyPem = null;
        try
        {
            caPem = config.CaFile is null ? null : ServerCertificate.ReadFile(config.CaFile, CertificateFile.Cert);
        }
        catch (CertificateLoadException ex)
        {
            errors.Add(new ConfigError(path + ".caFile", ex.Message));
        }

        try
        {
            certPem = config.ClientCertFile is null ? null : ServerCertificate.ReadFile(config.ClientCertFile, CertificateFile.Cert);
            keyPem = config.ClientKeyFile is null ? null : ServerCertificate.ReadFile(config.ClientKeyFile, CertificateFile.Key);
        }
        catch (CertificateLoadException ex)
        {
            errors.Add(new ConfigError(path + (ex.File == CertificateFile.Cert ? ".clientCertFile" : ".clientKeyFile"), ex.Message));
        }

        int before = errors.Count;
        byte[] hash = SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"{caPem}\0{certPem}\0{keyPem}"));
        if (before == errors.Count && previous is not null && previous.Error is null && hash.AsSpan().SequenceEqual(previous.ContentHash))
        {
            return previous;
        }

        X509Certificate2Collection? roots = null;
        if (caPem is not null)
        {
            roots = [];
            try
            {
                roots.ImportFromPem(caPem);
            }
            catch (CryptographicException ex)
            {
                errors.Add(new ConfigError(path + ".caFile", $"'{config.CaFile}' is not a PEM certificate: {ex.Message}"));
            }

            if (roots.Count == 0 && errors.Count == before)
            {
                errors.Add(new ConfigError(path + ".caFile", $"'{config.CaFile}' holds no PEM certificate"));
            }
        }

        SslStreamCertificateContext? client = null;
        if (certPem is not null && keyPem is not null)
        {
            try
            {
                var (leaf, chain) = ServerCertificate.LoadPair(certPem, keyPem, config.ClientCertFile!, config.ClientKeyFile!);
                client = SslStreamCertificateContext.Create(leaf, chain, offline: true);
            }
            catch (CertificateLoadException ex)
            {
                errors.Add(new ConfigError(path + (ex.File == CertificateFile.Cert ? ".clientCertFile" : ".clientKeyFile"), ex.Message));
            }
        }

        string? error = errors.Count > before ? string.Join("; ", errors.Skip(before)) : null;
        return new UpstreamTlsOptions(config, roots, client, hash, error);
    }
}
