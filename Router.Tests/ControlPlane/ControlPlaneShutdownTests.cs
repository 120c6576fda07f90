using NUnit.Framework;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Router.Core.ControlPlane;
using Router.Tests.Support;
using static Router.Tests.ControlPlane.RouterHubTests;

namespace Router.Tests.ControlPlane;

/// <summary>SIGTERM on the real <c>router-cp</c> process: it closes router sessions politely and exits 0 promptly; routers keep routing.</summary>
public sealed partial class ControlPlaneShutdownTests
{
    private const int SigTerm = 15;

    [Test]
    public async Task Sigterm_ClosesRouterSessionsWithAReason_ExitsZeroPromptly_AndRoutersKeepServing()
    {
        using var dir = new TempDir();
        await using var upstream = await TestUpstream.StartAsync("up");
        File.WriteAllText(dir.Sub("router-token"), TestControlPlane.RouterToken);
        File.WriteAllText(dir.Sub("admin-token"), TestControlPlane.AdminToken);
        File.WriteAllText(dir.Sub("config.json"), TestConfigs.Valid(upstream.EndPoint.Port));
        var port = RouterProcess.FreePort();
        using var cp = StartControlPlane(dir, port);
        try
        {
            await WaitForControlPlaneAsync(cp, port);

            // A real router process fed by the CP, and a raw session to see the close frame.
            await using var router = await RouterProcess.StartAsync([
                "--control-plane", $"ws://127.0.0.1:{port}/ws/router", "--token-file", dir.Sub("router-token"), "--node-id", "edge-1"]);
            using var client = new HttpClient { BaseAddress = new Uri($"http://{router.EndPoint}/") };
            Assert.That(await client.GetStringAsync(new Uri("/before", UriKind.Relative)), Is.EqualTo("up GET /before"));
            using var ws = new ClientWebSocket();
            ws.Options.SetRequestHeader("Authorization", "Bearer " + TestControlPlane.RouterToken);
            await ws.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/ws/router"), CancellationToken.None);
            await SendAsync(ws, new HelloMessage("watcher", "test", null, null));
            Assert.That(await ReceiveAsync(ws), Is.TypeOf<ConfigMessage>());

            var watch = Stopwatch.StartNew();
            Assert.That(Kill(cp.Id, SigTerm), Is.Zero);
            var close = await ReceiveCloseAsync(ws);
            await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None); // as a router answers
            using var exitTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await cp.WaitForExitAsync(exitTimeout.Token);
            var exitedAfter = watch.Elapsed;
            TestContext.Out.WriteLine($"router-cp exited {cp.ExitCode} after {exitedAfter.TotalMilliseconds:F0} ms");

            Assert.Multiple(() =>
            {
                Assert.That(close.CloseStatus, Is.EqualTo(WebSocketCloseStatus.NormalClosure));
                Assert.That(close.CloseStatusDescription, Is.EqualTo("control plane shutting down"));
                Assert.That(cp.ExitCode, Is.Zero);
                Assert.That(exitedAfter, Is.LessThan(TimeSpan.FromSeconds(2)), "exits promptly: answered closes do not wait for the close grace");
            });

            // The router notices, keeps its config and keeps routing.
            using var admin = new HttpClient { BaseAddress = new Uri($"http://{router.AdminEndPoint}/") };
            Assert.That(await Eventually.TrueAsync(() => ControlPlaneState(admin) != "Connected", TimeSpan.FromSeconds(10)), Is.True, "router saw the close");
            Assert.That(await client.GetStringAsync(new Uri("/after", UriKind.Relative)), Is.EqualTo("up GET /after"));
            Assert.That(router.HasExited, Is.False);
        }
        finally
        {
            if (!cp.HasExited)
            {
                cp.Kill(entireProcessTree: true);
            }
        }
    }

    private static Process StartControlPlane(TempDir dir, int port)
    {
        var info = new ProcessStartInfo(Path.Combine(RouterProcess.ProjectOutput("Router.ControlPlane"), "Router.ControlPlane"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in (string[])[
            "--listen", $"127.0.0.1:{port}", "--data-dir", dir.Sub("data"), "--token-file", dir.Sub("router-token"),
            "--admin-token-file", dir.Sub("admin-token"), "--config", dir.Sub("config.json")])
        {
            info.ArgumentList.Add(arg);
        }

        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static async Task WaitForControlPlaneAsync(Process cp, int port)
    {
        using var admin = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", TestControlPlane.AdminToken);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTime.UtcNow < deadline && !cp.HasExited)
        {
            try
            {
                using var response = await admin.GetAsync(new Uri($"http://127.0.0.1:{port}/api/config"));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(25);
        }

        Assert.Fail("router-cp did not start" + (cp.HasExited ? $" (exit {cp.ExitCode})" : ""));
    }

    private static async Task<WebSocketReceiveResult> ReceiveCloseAsync(ClientWebSocket ws)
    {
        var buffer = new byte[64 * 1024];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            var result = await ws.ReceiveAsync(buffer, timeout.Token);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return result;
            }
        }
    }

    private static string? ControlPlaneState(HttpClient admin)
    {
        var json = admin.GetStringAsync(new Uri("/admin/config", UriKind.Relative)).GetAwaiter().GetResult();
        using var doc = JsonDocument.Parse(Encoding.UTF8.GetBytes(json));
        return doc.RootElement.GetProperty("controlPlane").GetProperty("state").GetString();
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
