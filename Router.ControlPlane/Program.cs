using System.Net;
using Router.ControlPlane.Store;

namespace Router.ControlPlane;

internal static class Program
{
    private const string Usage = """
        usage: router-cp --data-dir DIR --token-file FILE --admin-token-file FILE
                         [--listen IP:PORT] [--config FILE] [--cert FILE --key FILE]
          --listen IP:PORT          address to serve the API and /ws/router on (default 127.0.0.1:7000)
          --data-dir DIR            versioned config store
          --token-file FILE         token routers present (Authorization: Bearer)
          --admin-token-file FILE   token the admin API requires
          --config FILE             initial config, stored as version 1 when the store is empty
          --cert FILE --key FILE    serve HTTPS/WSS with this PEM certificate and key
        """;

    public static async Task<int> Main(string[] args)
    {
        ControlPlaneOptions options;
        try
        {
            if (args is ["--help"] or ["-h"])
            {
                Console.WriteLine(Usage);
                return 0;
            }

            options = ParseArgs(args);
        }
        catch (ArgumentException ex)
        {
            await Console.Error.WriteLineAsync("router-cp: " + ex.Message);
            await Console.Error.WriteLineAsync(Usage);
            return 2;
        }

        WebApplication app;
        try
        {
            app = ControlPlaneApp.Build(options);
        }
        catch (InvalidConfigException ex)
        {
            await Console.Error.WriteLineAsync("router-cp: " + ex.Message);
            foreach (var error in ex.Errors)
            {
                await Console.Error.WriteLineAsync("  " + error);
            }

            return 1;
        }
        catch (Exception ex) when (ex is CorruptStoreException or InvalidCertificateException)
        {
            await Console.Error.WriteLineAsync("router-cp: " + ex.Message);
            return 1;
        }

        // SIGTERM/Ctrl+C stop the host gracefully (ASP.NET's console lifetime); the hub closes router sessions politely.
        await app.RunAsync();
        return 0;
    }

    internal static ControlPlaneOptions ParseArgs(IReadOnlyList<string> args)
    {
        IPEndPoint listen = new(IPAddress.Loopback, 7000);
        string? dataDir = null, tokenFile = null, adminTokenFile = null, config = null, cert = null, key = null;
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            var value = i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{name} needs a value");
            switch (name)
            {
                case "--listen":
                    listen = IPEndPoint.TryParse(value, out var ep) && value.Contains(':', StringComparison.Ordinal)
                        ? ep
                        : throw new ArgumentException($"--listen expects IP:PORT, got '{value}'");
                    break;
                case "--data-dir": dataDir = value; break;
                case "--token-file": tokenFile = value; break;
                case "--admin-token-file": adminTokenFile = value; break;
                case "--config": config = value; break;
                case "--cert": cert = value; break;
                case "--key": key = value; break;
                default: throw new ArgumentException($"unknown option '{name}'");
            }
        }

        if ((cert is null) != (key is null))
        {
            throw new ArgumentException("--cert and --key go together");
        }

        return new ControlPlaneOptions
        {
            Listen = listen,
            DataDirectory = dataDir ?? throw new ArgumentException("--data-dir is required"),
            RouterToken = ReadToken(tokenFile, "--token-file"),
            AdminToken = ReadToken(adminTokenFile, "--admin-token-file"),
            InitialConfigFile = config,
            CertFile = cert,
            KeyFile = key,
        };
    }

    private static string ReadToken(string? file, string flag)
    {
        if (file is null)
        {
            throw new ArgumentException($"{flag} is required");
        }

        string token;
        try
        {
            token = File.ReadAllText(file).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{flag}: cannot read '{file}': {ex.Message}");
        }

        return token.Length > 0 ? token : throw new ArgumentException($"{flag}: '{file}' is empty");
    }
}
