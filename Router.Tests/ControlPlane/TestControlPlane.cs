using NUnit.Framework;
using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Router.ControlPlane;
using Router.ControlPlane.Hub;

namespace Router.Tests.ControlPlane;

/// <summary>A real control plane, in-process on a loopback port, with an admin HttpClient.</summary>
internal sealed class TestControlPlane : IAsyncDisposable
{
    public const string RouterToken = "router-secret";
    public const string AdminToken = "admin-secret";

    private readonly WebApplication _app;

    private TestControlPlane(WebApplication app, ControlPlaneOptions options)
    {
        _app = app;
        Options = options;
        BaseUri = ControlPlaneApp.BoundAddress(app);
        Admin = new HttpClient { BaseAddress = BaseUri, Timeout = TimeSpan.FromSeconds(10) };
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
    }

    public ControlPlaneOptions Options { get; }

    public Uri BaseUri { get; }

    public Uri RouterUri => new($"{(BaseUri.Scheme == "https" ? "wss" : "ws")}://{BaseUri.Authority}/ws/router");

    public int Port => BaseUri.Port;

    public HttpClient Admin { get; }

    public FleetStatus Fleet => _app.Services.GetRequiredService<FleetStatus>();

    public RouterHub Hub => _app.Services.GetRequiredService<RouterHub>();

    public static async Task<TestControlPlane> StartAsync(
        string dataDir,
        int port = 0,
        string? initialConfigFile = null,
        TimeSpan? heartbeat = null,
        string? certFile = null,
        string? keyFile = null)
    {
        var options = new ControlPlaneOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, port),
            DataDirectory = dataDir,
            RouterToken = RouterToken,
            AdminToken = AdminToken,
            InitialConfigFile = initialConfigFile,
            HeartbeatInterval = heartbeat ?? TimeSpan.FromSeconds(1),
            KeepAliveInterval = TimeSpan.FromSeconds(5),
            MinimumLogLevel = LogLevel.Warning,
            CertFile = certFile,
            KeyFile = keyFile,
        };
        var app = ControlPlaneApp.Build(options);
        await app.StartAsync();
        return new TestControlPlane(app, options);
    }

    public async Task<HttpResponseMessage> PutConfigAsync(string json) =>
        await Admin.PutAsync(new Uri("/api/config", UriKind.Relative), new StringContent(json, Encoding.UTF8, "application/json"));

    /// <summary>PUTs a config that must be accepted; returns its version and hash.</summary>
    public async Task<(long Version, string Hash)> PutValidConfigAsync(string json)
    {
        using var response = await PutConfigAsync(json);
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
        using var doc = JsonDocument.Parse(body);
        return (doc.RootElement.GetProperty("version").GetInt64(), doc.RootElement.GetProperty("hash").GetString()!);
    }

    public async Task<JsonDocument> GetJsonAsync(string path)
    {
        using var response = await Admin.GetAsync(new Uri(path, UriKind.Relative));
        var body = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
        return JsonDocument.Parse(body);
    }

    /// <summary>The entry for one router in GET /api/routers.</summary>
    public async Task<JsonElement> GetRouterAsync(string nodeId)
    {
        using var doc = await GetJsonAsync("/api/routers");
        foreach (var router in doc.RootElement.GetProperty("routers").EnumerateArray())
        {
            if (router.GetProperty("nodeId").GetString() == nodeId)
            {
                return router.Clone();
            }
        }

        Assert.Fail($"router {nodeId} is not in /api/routers");
        return default;
    }

    /// <summary>Completes when the fleet status satisfies the predicate (checked now and on every change).</summary>
    public async Task WaitForFleetAsync(Func<IReadOnlyList<RouterStatusDto>, bool> predicate, string what)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var fleet = Fleet;
        void Check()
        {
            if (predicate(fleet.Snapshot()))
            {
                done.TrySetResult();
            }
        }

        fleet.Changed += Check;
        try
        {
            Check();
            await done.Task.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Assert.Fail("timed out waiting for: " + what);
        }
        finally
        {
            fleet.Changed -= Check;
        }
    }

    /// <summary>A raw WebSocket to /ws/router (no ControlPlaneClient), for protocol-level tests.</summary>
    public async Task<ClientWebSocket> ConnectRawAsync(string? token = RouterToken)
    {
        var ws = new ClientWebSocket();
        ws.Options.CollectHttpResponseDetails = true;
        if (token is not null)
        {
            ws.Options.SetRequestHeader("Authorization", "Bearer " + token);
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await ws.ConnectAsync(RouterUri, timeout.Token);
        return ws;
    }

    public async Task StopAsync()
    {
        await _app.StopAsync();
    }

    public async ValueTask DisposeAsync()
    {
        Admin.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>Config documents valid for the loader (and for a full validator: every route names an existing cluster).</summary>
internal static class TestConfigs
{
    public static string Valid(int port) => $$"""
        {
          "routes": [ { "id": "r", "match": { "pathPrefix": "/" }, "cluster": "c" } ],
          "clusters": [ { "id": "c", "destinations": [ { "address": "127.0.0.1:{{port}}" } ] } ]
        }
        """;

    /// <summary>Broken in more than one place; the stub loader already rejects it (clusters is not an array).</summary>
    public const string Invalid = """
        { "routes": [ { "id": "r", "match": { "pathPrefix": "/" }, "cluster": "missing" } ], "clusters": "not-an-array" }
        """;
}

/// <summary>Per-test temporary directory.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "router-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
