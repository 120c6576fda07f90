using System.Net;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Router.Tests.Support;

public enum UpstreamMode
{
    Normal,
    Fail500,
    Hang,
}

/// <summary>
/// A real upstream: Kestrel on loopback with endpoints that exercise the proxy (echo, large bodies, chunked,
/// slow responses, WebSocket echo). Counts accepted TCP connections so tests can check keep-alive reuse.
/// </summary>
public sealed class TestUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;
    private long _connections;
    private long _requests;

    private TestUpstream(string name, WebApplication app)
    {
        Name = name;
        _app = app;
    }

    public string Name { get; }

    public IPEndPoint EndPoint { get; private set; } = null!;

    public string Address => EndPoint.ToString();

    public long AcceptedConnections => Interlocked.Read(ref _connections);

    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>How the upstream behaves from now on.</summary>
    public volatile UpstreamMode Mode;

    /// <summary>The last request's headers as the upstream saw them.</summary>
    public IHeaderDictionary? LastHeaders { get; private set; }

    /// <param name="configureListen">Extra listener setup after the connection counter, e.g. <c>UseHttps</c>.</param>
    public static async Task<TestUpstream> StartAsync(string name, int port = 0, Action<ListenOptions>? configureListen = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        TestUpstream? self = null;
        builder.WebHost.ConfigureKestrel(options =>
        {
            options.Limits.MaxRequestBodySize = null;
            options.Listen(IPAddress.Loopback, port, listen =>
            {
                listen.Use(next => async context =>
                {
                    Interlocked.Increment(ref self!._connections);
                    await next(context);
                });
                configureListen?.Invoke(listen);
            });
        });
        var app = builder.Build();
        self = new TestUpstream(name, app);
        app.Use(async (context, next) =>
        {
            // Faults on command, for resilience tests: health checks see them too.
            switch (self.Mode)
            {
                case UpstreamMode.Fail500:
                    Interlocked.Increment(ref self._requests);
                    context.Response.StatusCode = 500;
                    await context.Response.WriteAsync("failing on purpose");
                    return;
                case UpstreamMode.Hang:
                    Interlocked.Increment(ref self._requests);
                    await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
                    return;
            }

            await next(context);
        });
        app.UseWebSockets();
        app.Use(async (context, next) =>
        {
            Interlocked.Increment(ref self._requests);
            self.LastHeaders = new HeaderDictionary(context.Request.Headers.ToDictionary(h => h.Key, h => h.Value));
            context.Response.Headers["X-Upstream"] = name;
            await next(context);
        });
        app.MapGet("/healthz", () => "ok");
        app.Map("/echo", async context =>
        {
            // Streams the request body back as it arrives, with the body's length when known.
            if (context.Request.ContentLength is { } length)
            {
                context.Response.ContentLength = length;
            }

            await context.Request.Body.CopyToAsync(context.Response.Body, 64 * 1024);
        });
        app.Map("/count", async context =>
        {
            // Reads the whole body and answers with its byte count: for large uploads.
            var buffer = new byte[64 * 1024];
            long total = 0;
            int read;
            while ((read = await context.Request.Body.ReadAsync(buffer)) > 0)
            {
                total += read;
            }

            await context.Response.WriteAsync(total.ToString(System.Globalization.CultureInfo.InvariantCulture));
        });
        app.MapMethods("/bytes/{size:long}", ["GET", "HEAD"], async (long size, HttpContext context) =>
        {
            // A large response, streamed with Content-Length.
            context.Response.ContentLength = size;
            if (HttpMethods.IsHead(context.Request.Method))
            {
                return;
            }

            var block = new byte[64 * 1024];
            Array.Fill(block, (byte)'x');
            while (size > 0)
            {
                int n = (int)Math.Min(block.Length, size);
                await context.Response.Body.WriteAsync(block.AsMemory(0, n));
                size -= n;
            }
        });
        app.MapGet("/chunked/{count:int}", async (int count, HttpContext context) =>
        {
            // No Content-Length and flushes between writes: Kestrel answers chunked.
            for (int i = 0; i < count; i++)
            {
                await context.Response.WriteAsync($"chunk-{i};");
                await context.Response.Body.FlushAsync();
            }
        });
        app.MapGet("/slow/{ms:int}", async (int ms) =>
        {
            await Task.Delay(ms);
            return "slow";
        });
        app.MapGet("/status/{code:int}", (int code) => code is 204 or 304 ? Results.StatusCode(code) : Results.Text("status " + code, statusCode: code));
        app.Map("/headers", (HttpContext context) =>
            Results.Text(string.Join("\n", context.Request.Headers.Select(h => $"{h.Key}: {h.Value}"))));
        app.Map("/ws", async context =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = 400;
                return;
            }

            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            var buffer = new byte[4096];
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
                    return;
                }

                await socket.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, CancellationToken.None);
            }
        });
        app.MapFallback((HttpContext context) => Results.Text($"{name} {context.Request.Method} {context.Request.Path}{context.Request.QueryString}"));

        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        self.EndPoint = IPEndPoint.Parse(new Uri(address).Authority);
        return self;
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }
}
