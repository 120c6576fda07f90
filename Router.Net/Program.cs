using System.CommandLine;
using Router.Net.Hosting;

namespace Router.Net;

/// <summary>The <c>router</c> command line.</summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var config = new Option<string?>("--config") { Description = "Config file (JSON). Watched and hot-reloaded." };
        var listen = new Option<string[]>("--listen") { Description = "Proxy listener IP:PORT (repeatable).", Arity = ArgumentArity.ZeroOrMore };
        var listenTls = new Option<string[]>("--listen-tls") { Description = "HTTPS proxy listener IP:PORT (repeatable); needs --cert and --key.", Arity = ArgumentArity.ZeroOrMore };
        var cert = new Option<string?>("--cert") { Description = "PEM certificate (chain) for --listen-tls. Re-read on reload." };
        var key = new Option<string?>("--key") { Description = "PEM private key of --cert." };
        var admin = new Option<string?>("--admin") { Description = "Admin listener IP:PORT (default 127.0.0.1:9901)." };
        var controlPlane = new Option<string?>("--control-plane") { Description = "Control plane WebSocket URL (ws:// or wss://)." };
        var tokenFile = new Option<string?>("--token-file") { Description = "File holding the bearer token for the control plane." };
        var caFile = new Option<string?>("--ca-file") { Description = "PEM CA certificate to trust for a wss:// control plane." };
        var cacheDir = new Option<string?>("--cache-dir") { Description = "Directory for the last-known-good config pushed by the control plane." };
        var nodeId = new Option<string?>("--node-id") { Description = "This router's id in the fleet (default: host name)." };
        var demo = new Option<bool>("--demo") { Description = "Start two in-process demo upstreams and a config that routes to them." };
        var accessLog = new Option<string?>("--access-log") { Description = "Write one JSON line per request to FILE ('-' for standard output)." };
        var maxConnections = new Option<int>("--max-connections") { Description = "Client connections at once; past it accepting pauses.", DefaultValueFactory = _ => 10_000 };
        var drain = new Option<int>("--drain-timeout-ms") { Description = "Time in-flight requests get on shutdown.", DefaultValueFactory = _ => 30000 };

        var root = new RootCommand("Router: a high-performance HTTP/1.1 edge router.")
        {
            config, listen, listenTls, cert, key, admin, controlPlane, tokenFile, caFile, cacheDir, nodeId, demo, drain, accessLog, maxConnections,
        };
        root.SetAction((parse, cancellationToken) => RouterApp.RunAsync(
            new RouterAppOptions
            {
                ConfigFile = parse.GetValue(config),
                Listen = parse.GetValue(listen) ?? [],
                ListenTls = parse.GetValue(listenTls) ?? [],
                CertFile = parse.GetValue(cert),
                KeyFile = parse.GetValue(key),
                Admin = parse.GetValue(admin),
                ControlPlane = parse.GetValue(controlPlane),
                TokenFile = parse.GetValue(tokenFile),
                CaFile = parse.GetValue(caFile),
                CacheDir = parse.GetValue(cacheDir),
                NodeId = parse.GetValue(nodeId),
                Demo = parse.GetValue(demo),
                AccessLog = parse.GetValue(accessLog),
                MaxConnections = parse.GetValue(maxConnections),
                DrainTimeout = TimeSpan.FromMilliseconds(parse.GetValue(drain)),
            },
            cancellationToken));

        var file = new Argument<string>("file") { Description = "Config file to check." };
        var validate = new Command("validate", "Validate a config file: exit 0 when valid, 1 with every error otherwise.") { file };
        validate.SetAction(parse => RouterApp.Validate(parse.GetValue(file)!));
        root.Subcommands.Add(validate);

        // Signals are ours: SIGTERM/SIGINT start a graceful drain (RouterApp), which can outlast a fixed termination timeout.
        return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }).ConfigureAwait(false);
    }
}
