using System.Net;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Router.Core.Configuration;
using Router.Net.ControlPlane;
using Router.Net.Demo;
using Router.Net.Observability;

namespace Router.Net.Hosting;

/// <summary>What the command line asked for.</summary>
internal sealed class RouterAppOptions
{
    public string? ConfigFile { get; init; }

    public IReadOnlyList<string> Listen { get; init; } = [];

    public IReadOnlyList<string> ListenTls { get; init; } = [];

    public string? CertFile { get; init; }

    public string? KeyFile { get; init; }

    public string? Admin { get; init; }

    public string? ControlPlane { get; init; }

    public string? TokenFile { get; init; }

    public string? CaFile { get; init; }

    public string? CacheDir { get; init; }

    public string? NodeId { get; init; }

    public bool Demo { get; init; }

    public string? AccessLog { get; init; }

    public int MaxConnections { get; init; } = 10_000;

    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>The router process: boot config, listeners, reload triggers, signals, drain.</summary>
internal static partial class RouterApp
{
    public static int Validate(string path)
    {
        var result = ConfigLoader.LoadFile(path);
        if (result.IsValid)
        {
            // Certificate, key and CA files must be usable too: the running router would reject them.
            var fileErrors = new List<ConfigError>(new Tls.ListenerCertificates(Tls.TlsHandshakeLimits.Default, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance).Validate(result.Config!));
            fileErrors.AddRange(new Tls.UpstreamTlsRegistry().Validate(result.Config!));
            if (fileErrors.Count > 0)
            {
                PrintErrors(path, fileErrors);
                return 1;
            }


            Console.WriteLine($"{path}: valid ({result.Config!.Routes.Count} routes, {result.Config.Clusters.Count} clusters, hash {result.Hash})");
            return 0;
        }

        Console.Error.WriteLine($"{path}: {result.Errors.Count} error(s)");
        foreach (var error in result.Errors)
        {
            Console.Error.WriteLine($"  {error.Path}: {error.Message}");
        }

        return 1;
    }

    public static async Task<int> RunAsync(RouterAppOptions options, CancellationToken cancellationToken)
    {
        if (CheckOptions(options) is { } usageError)
        {
            // A bad flag value: one plain line and exit 2, before anything is logged or bound.
            Console.Error.WriteLine(usageError);
            return 2;
        }

        using var loggerFactory = LoggerFactory.Create(builder => builder
            .AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss.fff ";
            })
            .AddConsole(o =>
            {
                // With the access log on standard output, the router's own log goes to standard error, so stdout
                // stays one JSON line per request.
                if (options.AccessLog == "-")
                {
                    o.LogToStandardErrorThreshold = LogLevel.Trace;
                }
            })
            .SetMinimumLevel(LogLevel.Information));
        var logger = loggerFactory.CreateLogger("Router");

        // A client connection can hold two descriptors (itself and its upstream connection), plus some for the rest.
        long descriptorsNeeded = (2L * options.MaxConnections) + 256;
        if (DescriptorLimit.Raise() is long descriptors && descriptorsNeeded > descriptors)
        {
            LogDescriptorsShort(logger, options.MaxConnections, descriptorsNeeded, descriptors);
        }

        var hostOptions = new RouterHostOptions
        {
            DrainTimeout = options.DrainTimeout,
            AccessLogPath = options.AccessLog,
            MaxClientConnections = options.MaxConnections,
            Admin = ParseEndPoint(options.Admin ?? "127.0.0.1:9901"),
        };
        foreach (var listen in options.Listen)
        {
            hostOptions.Listen.Add(ParseEndPoint(listen));
        }

        if (options.ListenTls.Count > 0)
        {
            if (options.CertFile is null || options.KeyFile is null)
            {
                Console.Error.WriteLine("--listen-tls needs --cert FILE and --key FILE");
                return 2;
            }

            hostOptions.TlsCertificate = new ListenerCertificateConfig { CertFile = options.CertFile, KeyFile = options.KeyFile };
            foreach (var listen in options.ListenTls)
            {
                hostOptions.ListenTls.Add(ParseEndPoint(listen));
            }
        }

        RouterHost host;
        try
        {
            host = new RouterHost(hostOptions, loggerFactory);
        }
        catch (Exception ex) when (options.AccessLog is not null && ex is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"--access-log: cannot open '{options.AccessLog}': {ex.Message}");
            return 2;
        }

        await using var ownedHost = host;
        var demoUpstreams = new List<DemoUpstream>();
        ConfigFileWatcher? watcher = null;
        ControlPlaneClient? controlPlane = null;
        try
        {
            if (options.Demo)
            {
                var a = new DemoUpstream("A", new IPEndPoint(IPAddress.Loopback, 0), logger);
                var b = new DemoUpstream("B", new IPEndPoint(IPAddress.Loopback, 0), logger);
                demoUpstreams.Add(a);
                demoUpstreams.Add(b);
                var outcome = host.Applier.Apply(DemoConfig.Create(a.EndPoint, b.EndPoint), "demo");
                if (!outcome.Applied)
                {
                    Console.Error.WriteLine("demo config invalid: " + string.Join("; ", outcome.Errors));
                    return 1;
                }
            }
            else if (options.ControlPlane is not null)
            {
                // Boot order: last-known-good cache first (it is what the fleet last agreed on), then the
                // --config file as a fallback; routing starts before the control plane answers, or without it.
                if (options.CacheDir is not null && LastKnownGoodCache.TryLoad(options.CacheDir, out var cached, out long? version, out _))
                {
                    var outcome = host.Applier.Apply(cached, "cache", version);
                    LogBootFromCache(logger, outcome.Applied, options.CacheDir);
                }

                if (host.Table.Current is null && options.ConfigFile is not null)
                {
                    var loaded = ConfigLoader.LoadFile(options.ConfigFile);
                    if (!loaded.IsValid)
                    {
                        PrintErrors(options.ConfigFile, loaded.Errors);
                        return 1;
                    }

                    host.Applier.Apply(loaded.Config!, "file:" + options.ConfigFile);
                }

                if (options.TokenFile is null)
                {
                    Console.Error.WriteLine("--control-plane needs --token-file");
                    return 2;
                }

                string token;
                try
                {
                    token = File.ReadAllText(options.TokenFile).Trim();
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    Console.Error.WriteLine($"--token-file: cannot read '{options.TokenFile}': {ex.Message}");
                    return 2;
                }

                if (token.Length == 0)
                {
                    // An empty token could only ever be refused (401): say so now rather than retry for ever.
                    Console.Error.WriteLine($"--token-file: '{options.TokenFile}' is empty");
                    return 2;
                }

                var uri = new Uri(options.ControlPlane);
                controlPlane = new ControlPlaneClient(
                    new ControlPlaneClientOptions
                    {
                        Uri = uri,
                        Token = token,
                        NodeId = options.NodeId ?? Environment.MachineName,
                        CacheDirectory = options.CacheDir,
                        CaFile = options.CaFile,
                    },
                    host.Applier,
                    loggerFactory.CreateLogger<ControlPlaneClient>());
                host.ControlPlaneStatus = new ControlPlaneStatus(controlPlane, uri);
            }
            else if (options.ConfigFile is not null)
            {
                watcher = new ConfigFileWatcher(options.ConfigFile, host.Applier, loggerFactory);

                // Watch first, then read: a write between the two is then seen by the watcher, not lost.
                watcher.Start();
                var outcome = watcher.Reload();
                if (!outcome.Applied)
                {
                    // At boot there is no last-known-good to fall back on: refuse to start, loudly.
                    PrintErrors(options.ConfigFile, outcome.Errors);
                    return 1;
                }

                host.Reload = watcher.Reload;
            }
            else
            {
                Console.Error.WriteLine("nothing to route: give --config FILE, --control-plane URL or --demo (see --help)");
                return 2;
            }

            if (hostOptions.Listen.Count == 0 && hostOptions.ListenTls.Count == 0 && (host.Table.Current?.Config.Listeners.Count ?? 0) == 0)
            {
                hostOptions.Listen.Add(new IPEndPoint(IPAddress.Loopback, 8080));
            }

            // Registered before the first connection is accepted, and through the drain: without the handlers a SIGHUP
            // (a config reloader, logrotate) or a second SIGTERM would get the default action and kill the process with
            // its requests in flight. A SIGTERM before the start completes is kept and drains at once.
            using var signals = new ShutdownSignals(watcher, host.Runtime.AccessLog, logger);
            try
            {
                host.Start();
            }
            catch (IOException ex)
            {
                // A port already taken, or a bind the user may not do: a plain line, not a stack trace.
                Console.Error.WriteLine(ex.Message);
                return 1;
            }
            foreach (var endPoint in host.ListenEndPoints)
            {
                LogListening(logger, endPoint);
            }

            foreach (var endPoint in host.TlsListenEndPoints)
            {
                LogListeningTls(logger, endPoint);
            }

            LogAdmin(logger, host.AdminEndPoint);
            controlPlane?.Start();
            if (options.Demo)
            {
                // With the access log on standard output, the banner goes to standard error with the log.
                PrintDemo(host, options.AccessLog == "-" ? Console.Error : Console.Out);
            }

            using (cancellationToken.Register(signals.Stop))
            {
                await signals.Stopping.ConfigureAwait(false);
            }

            LogDraining(logger, options.DrainTimeout);
            await host.StopAsync(options.DrainTimeout, signals.DrainNow).ConfigureAwait(false);
            LogStopped(logger);
            return 0;
        }
        finally
        {
            if (controlPlane is not null)
            {
                await controlPlane.DisposeAsync().ConfigureAwait(false);
            }

            watcher?.Dispose();
            foreach (var upstream in demoUpstreams)
            {
                await upstream.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// SIGTERM/SIGINT start the drain; a second one ends it at once (as the drain timeout would: what is left is
    /// aborted, the process still exits 0). SIGHUP reopens the access log and reloads the config file (the reload is
    /// skipped once the drain began).
    /// </summary>
    private sealed class ShutdownSignals : IDisposable
    {
        private readonly TaskCompletionSource _stop = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly CancellationTokenSource _drainNow = new();
        private readonly ConfigFileWatcher? _watcher;
        private readonly AccessLog? _accessLog;
        private readonly ILogger _logger;
        private readonly PosixSignalRegistration _sigterm;
        private readonly PosixSignalRegistration _sigint;
        private readonly PosixSignalRegistration _sighup;

        public ShutdownSignals(ConfigFileWatcher? watcher, AccessLog? accessLog, ILogger logger)
        {
            _watcher = watcher;
            _accessLog = accessLog;
            _logger = logger;
            _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnStop);
            _sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnStop);
            if (IgnoredHangUp.Restore())
            {
                LogHangUpTakenBack(logger);
            }

            _sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, OnHangUp);
        }

        public Task Stopping => _stop.Task;

        public CancellationToken DrainNow => _drainNow.Token;

        public void Stop()
        {
            if (!_stop.TrySetResult() && !_drainNow.IsCancellationRequested)
            {
                LogDrainCutShort(_logger);
                _drainNow.Cancel();
            }
        }

        private void OnStop(PosixSignalContext context)
        {
            context.Cancel = true;
            Stop();
        }

        private void OnHangUp(PosixSignalContext context)
        {
            context.Cancel = true;
            // Log rotation sends SIGHUP too (logrotate's postrotate): the access log reopens by its path, even while
            // draining, so the last lines do not go to the rotated file.
            _accessLog?.Reopen();
            if (!_stop.Task.IsCompleted)
            {
                _watcher?.Reload();
            }
        }

        public void Dispose()
        {
            _sigterm.Dispose();
            _sigint.Dispose();
            _sighup.Dispose();
            _drainNow.Dispose();
        }
    }

    private static void PrintErrors(string file, IReadOnlyList<ConfigError> errors)
    {
        Console.Error.WriteLine($"{file}: {errors.Count} error(s)");
        foreach (var error in errors)
        {
            Console.Error.WriteLine($"  {error.Path}: {error.Message}");
        }
    }

    private static void PrintDemo(RouterHost host, TextWriter output)
    {
        var proxy = host.ListenEndPoints[0];
        var admin = host.AdminEndPoint;
        output.WriteLine();
        output.WriteLine($"Router demo is up on http://{proxy}  (admin on http://{admin})");
        output.WriteLine("Try:");
        output.WriteLine($"  curl -i http://{proxy}/api/hello          # round robin over upstreams A and B");
        output.WriteLine($"  curl -i http://{proxy}/                   # upstream A");
        output.WriteLine($"  curl -i -H 'Host: shop.demo.test' http://{proxy}/   # wildcard host -> upstream B");
        output.WriteLine($"  curl -i -X POST --data-binary @README.md http://{proxy}/api/upload   # streamed request body");
        output.WriteLine($"  curl -s http://{admin}/admin/config       # live config, version and hash");
        output.WriteLine($"  curl -s http://{admin}/admin/clusters     # destinations, in-flight, pooled connections");
        output.WriteLine("Press Ctrl+C to stop (in-flight requests drain first).");
        output.WriteLine();
    }

    internal static IPEndPoint ParseEndPoint(string text) =>
        TryParseEndPoint(text, out var endPoint) ? endPoint : throw new ArgumentException($"'{text}' is not IP:PORT");

    private static bool TryParseEndPoint(string text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IPEndPoint? endPoint)
    {
        if (IPEndPoint.TryParse(text, out endPoint) && endPoint.Port != 0 || text.EndsWith(":0", StringComparison.Ordinal) && IPEndPoint.TryParse(text, out endPoint))
        {
            return true;
        }

        if (text.StartsWith("localhost:", StringComparison.OrdinalIgnoreCase) && int.TryParse(text.AsSpan(10), out int port)
            && port is >= IPEndPoint.MinPort and <= IPEndPoint.MaxPort)
        {
            endPoint = new IPEndPoint(IPAddress.Loopback, port);
            return true;
        }

        endPoint = null;
        return false;
    }

    /// <summary>The first flag value the router cannot run with, as a one-line message; null when all are usable.</summary>
    private static string? CheckOptions(RouterAppOptions options)
    {
        foreach (var (flag, values) in (ReadOnlySpan<(string, IReadOnlyList<string>)>)
            [("--listen", options.Listen), ("--listen-tls", options.ListenTls), ("--admin", options.Admin is null ? [] : [options.Admin])])
        {
            foreach (var text in values)
            {
                if (!TryParseEndPoint(text, out _))
                {
                    return $"{flag}: '{text}' is not IP:PORT (e.g. 127.0.0.1:8080, [::1]:8080 or localhost:8080; port 0-65535)";
                }
            }
        }

        if (options.MaxConnections < 1)
        {
            return $"--max-connections: must be at least 1, not {options.MaxConnections}";
        }

        if (options.DrainTimeout < TimeSpan.Zero)
        {
            return $"--drain-timeout-ms: must be 0 or more, not {options.DrainTimeout.TotalMilliseconds}";
        }

        if (options.Demo && (options.ConfigFile is not null || options.ControlPlane is not null))
        {
            return "--demo routes to its own upstreams: it cannot be combined with --config or --control-plane";
        }

        if (options.ControlPlane is { } url && !(Uri.TryCreate(url, UriKind.Absolute, out var uri) && ControlPlaneClientOptions.IsHubUri(uri)))
        {
            return $"--control-plane: '{url}' is not a ws:// or wss:// URL";
        }

        return null;
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Proxy listening on {EndPoint}")]
    private static partial void LogListening(ILogger logger, IPEndPoint endPoint);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "Proxy listening on {EndPoint} (HTTPS)")]
    private static partial void LogListeningTls(ILogger logger, IPEndPoint endPoint);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Admin listening on {EndPoint}")]
    private static partial void LogAdmin(ILogger logger, IPEndPoint? endPoint);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Shutting down: draining in-flight requests for up to {Timeout}")]
    private static partial void LogDraining(ILogger logger, TimeSpan timeout);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Boot from last-known-good cache in {CacheDir}: applied={Applied}")]
    private static partial void LogBootFromCache(ILogger logger, bool applied, string cacheDir);

    [LoggerMessage(EventId = 7, Level = LogLevel.Warning, Message = "--max-connections {MaxConnections} can need {Needed} descriptors but this process may open {Limit}: raise the hard limit (ulimit -Hn) or lower --max-connections")]
    private static partial void LogDescriptorsShort(ILogger logger, int maxConnections, long needed, long limit);

    [LoggerMessage(EventId = 8, Level = LogLevel.Warning, Message = "Second shutdown signal: ending the drain now, aborting what is still in flight")]
    private static partial void LogDrainCutShort(ILogger logger);

    [LoggerMessage(EventId = 9, Level = LogLevel.Information, Message = "SIGHUP was inherited ignored (nohup?): handling it again, to reload the config and reopen the access log")]
    private static partial void LogHangUpTakenBack(ILogger logger);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Stopped")]
    private static partial void LogStopped(ILogger logger);
}
