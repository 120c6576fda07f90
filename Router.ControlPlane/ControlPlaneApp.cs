using System.Security.Cryptography.X509Certificates;
using Router.ControlPlane.Api;
using Router.ControlPlane.Dashboard;
using Router.ControlPlane.Hub;
using Router.ControlPlane.Store;
using Router.Core.Configuration;

namespace Router.ControlPlane;

/// <summary>Builds the control plane's web application; used by <c>Program</c> and by in-process tests.</summary>
internal static class ControlPlaneApp
{
    /// <summary>
    /// Builds (does not start) the app: opens the store, seeds it from <see cref="ControlPlaneOptions.InitialConfigFile"/>
    /// when empty, maps the admin API, the dashboard and the router hub. Throws <see cref="InvalidConfigException"/> for an invalid initial config.
    /// </summary>
    public static WebApplication Build(ControlPlaneOptions options)
    {
        // Loaded before anything else: a bad file is a startup error with the flag's name, not a crash inside Kestrel.
        var certificate = options.CertFile is null ? null : LoadCertificate(options.CertFile, options.KeyFile);
        var store = new ConfigStore(options.DataDirectory);
        if (store.Current is null && options.InitialConfigFile is not null)
        {
            var result = ConfigLoader.Load(File.ReadAllBytes(options.InitialConfigFile));
            if (!result.IsValid)
            {
                throw new InvalidConfigException(options.InitialConfigFile, result.Errors);
            }

            store.Add(ConfigLoader.Serialize(result.Config!), result.Hash, "initial");
        }

        // No args: our flags must not leak into ASP.NET configuration.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.SetMinimumLevel(options.MinimumLogLevel);
        // Per-request framework logs drown the fleet events; "Now listening on" (Microsoft.Hosting.Lifetime) stays.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(options.Listen, listen =>
            {
                if (certificate is not null)
                {
                    listen.UseHttps(certificate);
                }
            });
        });
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(store);
        builder.Services.AddSingleton<FleetStatus>();
        builder.Services.AddSingleton<RouterHub>();

        var app = builder.Build();
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = options.KeepAliveInterval });
        app.MapAdminApi(options.AdminToken);
        app.MapDashboard();
        var hub = app.Services.GetRequiredService<RouterHub>();
        var stopping = app.Lifetime.ApplicationStopping;
        app.Map("/ws/router", (HttpContext context) => hub.HandleAsync(context, stopping));
        return app;
    }

    /// <summary>The first bound address (e.g. <c>http://127.0.0.1:43123</c>) once the app has started.</summary>
    public static Uri BoundAddress(WebApplication app)
    {
        foreach (var url in app.Urls)
        {
            return new Uri(url);
        }

        throw new InvalidOperationException("the control plane is not listening");
    }

    private static X509Certificate2 LoadCertificate(string certFile, string? keyFile)
    {
        string certPem = ReadPem(certFile, "--cert");
        string keyPem = keyFile is null ? certPem : ReadPem(keyFile, "--key");
        X509Certificate2 cert;
        try
        {
            cert = X509Certificate2.CreateFromPem(certPem, keyPem);
        }
        catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            throw new InvalidCertificateException($"--cert/--key: '{keyFile}' is not the private key of '{certFile}', or one of them is not PEM: {ex.Message}");
        }

        // Linux/macOS TLS stacks need the key in an exportable, non-ephemeral form; a PKCS#12 round trip gives that.
        var pfx = cert.Export(X509ContentType.Pkcs12);
        cert.Dispose();
        return X509CertificateLoader.LoadPkcs12(pfx, password: null);
    }

    private static string ReadPem(string file, string flag)
    {
        try
        {
            return File.ReadAllText(file);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidCertificateException($"{flag}: cannot read '{file}': {ex.Message}");
        }
    }
}

/// <summary>The <c>--cert</c>/<c>--key</c> files cannot be used; the message names the flag and the file.</summary>
internal sealed class InvalidCertificateException(string message) : Exception(message);

/// <summary>An initial config file that does not validate.</summary>
internal sealed class InvalidConfigException(string file, IReadOnlyList<ConfigError> errors)
    : Exception($"{file} is not a valid config ({errors.Count} error(s))")
{
    public IReadOnlyList<ConfigError> Errors { get; } = errors;
}
