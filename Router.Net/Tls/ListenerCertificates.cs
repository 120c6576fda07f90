using Microsoft.Extensions.Logging;
using Router.Core.Configuration;

namespace Router.Net.Tls;

/// <summary>
/// The server certificates of every TLS listener of a router, and their reload. A config is validated by loading all
/// its certificate files (<see cref="Validate"/>: an unreadable file or a key that does not match rejects the config,
/// so the old certificates keep serving); once it is live, <see cref="Activate"/> swaps each listener's store.
/// Files whose content did not change keep their loaded certificate (and its TLS session cache).
/// </summary>
internal sealed partial class ListenerCertificates
{
    /// <summary>Name of the listener made from <c>--listen-tls/--cert/--key</c>, for errors and logs.</summary>
    public const string CommandLinePath = "--cert/--key";

    private readonly Lock _gate = new();
    private readonly Dictionary<(string Cert, string Key), ServerCertificate> _loaded = [];
    private readonly List<(TlsServerContext Context, ListenerTlsConfig? Fixed)> _listeners = [];
    private readonly TlsHandshakeLimits _limits;
    private readonly ILogger _logger;

    public ListenerCertificates(TlsHandshakeLimits limits, ILogger logger)
    {
        _limits = limits;
        _logger = logger;
        Gate = new HandshakeGate(limits.MaxConcurrentHandshakes);
    }

    /// <summary>Certificates given on the command line (<c>--cert/--key</c>); validated with every config.</summary>
    public ListenerTlsConfig? CommandLine { get; set; }

    /// <summary>Shared by every TLS listener: bounds handshakes in progress.</summary>
    public HandshakeGate Gate { get; }

    public IReadOnlyList<TlsServerContext> Listeners
    {
        get
        {
            lock (_gate)
            {
                return _listeners.ConvertAll(l => l.Context);
            }
        }
    }

    /// <summary>Loads every certificate the config (and the command line) names; the errors reject the config.</summary>
    public IReadOnlyList<ConfigError> Validate(RouterConfig config)
    {
        var errors = new List<ConfigError>();
        lock (_gate)
        {
            for (int i = 0; i < config.Listeners.Count; i++)
            {
                if (config.Listeners[i]?.Tls is { } tls)
                {
                    TryBuild(tls, $"$.listeners[{i}].tls", errors);
                }
            }

            if (CommandLine is { } commandLine)
            {
                TryBuild(commandLine, CommandLinePath, errors);
            }
        }

        return errors;
    }

    /// <summary>Creates the context of a listener bound at start. <paramref name="tls"/> null: a config listener, found by address on reload.</summary>
    public TlsServerContext Create(string name, ListenerTlsConfig tls, bool fromCommandLine)
    {
        lock (_gate)
        {
            var errors = new List<ConfigError>();
            var store = TryBuild(tls, name, errors)
                ?? throw new InvalidOperationException("TLS listener " + name + ": " + string.Join("; ", errors));
            var context = new TlsServerContext(name, store, _limits, Gate);
            _listeners.Add((context, fromCommandLine ? tls : null));
            return context;
        }
    }

    /// <summary>After a config went live (or was re-applied unchanged): new handshakes get the certificates now on disk.</summary>
    public void Activate(RouterConfig config)
    {
        lock (_gate)
        {
            foreach (var (context, fixedTls) in _listeners)
            {
                var tls = fixedTls ?? Find(config, context.Name);
                if (tls is null)
                {
                    continue; // the listener left the config; it keeps serving until restart, as plain listeners do
                }

                var errors = new List<ConfigError>();
                var store = TryBuild(tls, context.Name, errors);
                if (store is null)
                {
                    // Validation loaded these moments ago; a file changed in between. Keep serving the old store.
                    LogReloadFailed(_logger, context.Name, string.Join("; ", errors));
                    continue;
                }

                // Always swap (host lists or the default may have changed); log only when a certificate did.
                bool changed = !SameCertificates(store, context.Store);
                context.Swap(store);
                if (changed)
                {
                    LogReloaded(_logger, context.Name, store.Certificates.Count, store.Default.Leaf.NotAfter);
                }
            }
        }
    }

    private static bool SameCertificates(CertificateStore a, CertificateStore b)
    {
        if (a.Certificates.Count != b.Certificates.Count)
        {
            return false;
        }

        for (int i = 0; i < a.Certificates.Count; i++)
        {
            if (!ReferenceEquals(a.Certificates[i], b.Certificates[i]))
            {
                return false;
            }
        }

        return true;
    }

    private static ListenerTlsConfig? Find(RouterConfig config, string name)
    {
        foreach (var listener in config.Listeners)
        {
            if (listener is not null && listener.Address == name)
            {
                return listener.Tls;
            }
        }

        return null;
    }

    private CertificateStore? TryBuild(ListenerTlsConfig tls, string path, List<ConfigError> errors)
    {
        int before = errors.Count;
        var certificates = new List<ServerCertificate>(tls.Certificates.Count);
        var hosts = new List<IReadOnlyList<string>>(tls.Certificates.Count);
        for (int i = 0; i < tls.Certificates.Count; i++)
        {
            var entry = tls.Certificates[i];
            string certPath = path == CommandLinePath ? path : $"{path}.certificates[{i}]";
            var key = (entry.CertFile, entry.KeyFile);
            _loaded.TryGetValue(key, out var previous);
            try
            {
                var certificate = ServerCertificate.Load(entry.CertFile, entry.KeyFile, previous);
                if (!ReferenceEquals(certificate, previous) && _listeners.Count > 0 && certificate.Leaf.NotAfter.ToUniversalTime() <= DateTime.UtcNow)
                {
                    // A renewal that wrote an expired certificate (an old backup, a stale copy): refuse it so the one
                    // serving now stays. At boot it is served (a restart must not take the router down); unchanged
                    // files are not re-checked, so a certificate expiring in service does not block other config changes.
                    throw new CertificateLoadException(CertificateFile.Cert,
                        $"'{entry.CertFile}' expired on {certificate.Leaf.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm:ss}Z");
                }

                _loaded[key] = certificate;
                certificates.Add(certificate);
                hosts.Add(entry.Hosts);
            }
            catch (Exception ex) when (ex is CertificateLoadException or System.Security.Cryptography.CryptographicException or ArgumentException)
            {
                var file = (ex as CertificateLoadException)?.File ?? CertificateFile.Cert;
                string field = path == CommandLinePath ? (file == CertificateFile.Cert ? "--cert" : "--key")
                    : certPath + (file == CertificateFile.Cert ? ".certFile" : ".keyFile");
                errors.Add(new ConfigError(field, ex.Message));
            }
        }

        if (errors.Count > before || certificates.Count == 0)
        {
            return null;
        }

        int defaultIndex = tls.DefaultCertificate is { } index && index >= 0 && index < certificates.Count ? index : 0;
        return new CertificateStore(certificates, hosts, defaultIndex, tls.RejectUnknownSni);
    }

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "TLS listener {Listener}: {Count} certificate(s) loaded; default expires {NotAfter}")]
    private static partial void LogReloaded(ILogger logger, string listener, int count, DateTime notAfter);

    [LoggerMessage(EventId = 401, Level = LogLevel.Error, Message = "TLS listener {Listener}: certificate reload failed, previous certificates keep serving: {Errors}")]
    private static partial void LogReloadFailed(ILogger logger, string listener, string errors);
}
