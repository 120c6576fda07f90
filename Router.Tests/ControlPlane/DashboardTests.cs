using NUnit.Framework;
using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using System.Text.RegularExpressions;
using Router.Core.Configuration;
using Router.Core.ControlPlane;
using static Router.Tests.ControlPlane.RouterHubTests;

namespace Router.Tests.ControlPlane;

/// <summary>The fleet dashboard at <c>/dashboard</c>: served by the control plane, fed by the admin API, checked in a real browser.</summary>
public sealed class DashboardTests
{
    private const string NackPath = "$.clusters[0].destinations[0].address";
    private const string NackMessage = "cannot resolve 'api.internal:8080'";

    [Test]
    public async Task Dashboard_IsServedWithoutTheToken_ButItsDataStillNeedsTheAdminToken()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        using var anonymous = new HttpClient { BaseAddress = cp.BaseUri };

        using var page = await anonymous.GetAsync(new Uri("/dashboard", UriKind.Relative));
        using var script = await anonymous.GetAsync(new Uri("/dashboard/app.js", UriKind.Relative));
        using var data = await anonymous.GetAsync(new Uri("/api/routers", UriKind.Relative));
        var html = await page.Content.ReadAsStringAsync();
        var js = await script.Content.ReadAsStringAsync();

        Assert.Multiple(() =>
        {
            Assert.That(page.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(page.Content.Headers.ContentType!.MediaType, Is.EqualTo("text/html"));
            Assert.That(page.Headers.GetValues("Content-Security-Policy").Single(), Does.Contain("script-src 'self'").And.Contain("connect-src 'self'"));
            Assert.That(html, Does.Contain("/dashboard/app.js").And.Not.Contain("http://").And.Not.Contain("https://"), "no external resources");
            Assert.That(script.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(js, Does.Contain("'Authorization': 'Bearer '"));
            Assert.That(data.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized), "the API's auth is unchanged");
        });
    }

    [Test]
    [Category("Browser")]
    public async Task Dashboard_InHeadlessChromium_ShowsEveryRouterItsAppliedVersionStateAndNackErrors()
    {
        var chromium = FindChromium();
        using var dir = new TempDir();
        // Long heartbeats: the fake routers below never send one, and must stay "connected" while the browser runs.
        await using var cp = await TestControlPlane.StartAsync(dir.Sub("data"), heartbeat: TimeSpan.FromSeconds(60));
        var v1 = await cp.PutValidConfigAsync(TestConfigs.Valid(9001));
        using var a = await ConnectRouterAsync(cp, "edge-a", v1);
        using var b = await ConnectRouterAsync(cp, "edge-b", v1);
        using (var c = await ConnectRouterAsync(cp, "edge-c", v1))
        {
            await c.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
        }

        // v2: edge-a applies it, edge-b rejects it and stays on v1.
        var v2 = await cp.PutValidConfigAsync(TestConfigs.Valid(9002));
        await AnswerConfigAsync(a, v2.Version, reject: false);
        await AnswerConfigAsync(b, v2.Version, reject: true);
        await cp.WaitForFleetAsync(
            f => f.Count == 3 && f[0].AppliedVersion == v2.Version && f[1].LastNackVersion == v2.Version && !f[2].Connected,
            "edge-a on v2, edge-b nacked v2, edge-c gone");

        var url = new Uri(cp.BaseUri, "/dashboard#token=" + TestControlPlane.AdminToken);
        var dom = await RunChromiumAsync(chromium, dir.Sub("profile"), "--dump-dom", url.ToString());

        var rowA = Row(dom, "edge-a");
        var rowB = Row(dom, "edge-b");
        var rowC = Row(dom, "edge-c");
        Assert.Multiple(() =>
        {
            Assert.That(dom, Does.Contain("current config <strong id=\"current-version\">v2</strong>"));
            Assert.That(rowA, Does.Contain(">connected<").And.Contain(">v2<").And.Not.Contain("rejected"));
            Assert.That(rowB, Does.Contain(">connected<").And.Contain(">v1<").And.Contain(">behind<"));
            Assert.That(rowB, Does.Contain("rejected v2").And.Contain(NackPath).And.Contain(NackMessage));
            Assert.That(rowC, Does.Contain(">disconnected<").And.Contain(">v1<"));
            Assert.That(dom, Does.Contain("class=\"status ok\""), "the live fetch succeeded");
            Assert.That(dom, Does.Not.Contain(TestControlPlane.AdminToken), "the token is not left in the page");
        });

        var screenshot = Path.Combine(dir.Path, "dashboard.png");
        await RunChromiumAsync(chromium, dir.Sub("profile"), "--screenshot=" + screenshot, "--window-size=1200,700", url.ToString());
        var png = await File.ReadAllBytesAsync(screenshot);
        Assert.That(png.AsSpan(0, 8).ToArray(), Is.EqualTo(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }), "a PNG was written");
        SaveScreenshotWhenAsked(png);
    }

    /// <summary>A fake router: hello, then acks the config the CP pushes.</summary>
    private static async Task<ClientWebSocket> ConnectRouterAsync(TestControlPlane cp, string nodeId, (long Version, string Hash) expected)
    {
        var ws = await cp.ConnectRawAsync();
        await SendAsync(ws, new HelloMessage(nodeId, "router/1.0.0-test", null, null));
        await AnswerConfigAsync(ws, expected.Version, reject: false);
        return ws;
    }

    private static async Task AnswerConfigAsync(ClientWebSocket ws, long version, bool reject)
    {
        ControlPlaneMessage message;
        do
        {
            message = await ReceiveAsync(ws);
        }
        while (message is HeartbeatMessage);

        var config = (ConfigMessage)message;
        Assert.That(config.Version, Is.EqualTo(version));
        await SendAsync(ws, reject
            ? new NackMessage(config.Version, config.Hash, [new ConfigError(NackPath, NackMessage)])
            : new AckMessage(config.Version, config.Hash));
    }

    private static string Row(string dom, string nodeId)
    {
        var match = Regex.Match(dom, $"<tr data-node=\"{Regex.Escape(nodeId)}\">(.*?)</tr>", RegexOptions.Singleline);
        Assert.That(match.Success, Is.True, $"the dashboard shows {nodeId}:\n{dom}");
        return match.Groups[1].Value;
    }

    private static string FindChromium()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            foreach (var name in new[] { "chromium", "chromium-browser" })
            {
                var path = Path.Combine(dir, name);
                if (File.Exists(path))
                {
                    return path;
                }
            }
        }

        Assert.Fail("chromium is not installed: this Browser test needs it (apt-get install -y chromium; .ci/run installs it)");
        return "";
    }

    /// <summary>Runs headless Chromium once; virtual time lets the page's 1 s polling run before the DOM or screenshot is taken.</summary>
    private static async Task<string> RunChromiumAsync(string chromium, string profile, params string[] args)
    {
        var info = new ProcessStartInfo(chromium)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in (string[])[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            "--user-data-dir=" + profile, "--virtual-time-budget=3000", .. args])
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("chromium did not finish within 60 s:\n" + await stderr);
        }

        Assert.That(process.ExitCode, Is.Zero, "chromium failed:\n" + await stderr);
        return await stdout;
    }

    /// <summary>Refreshes docs/dashboard.png only when asked (ROUTER_WRITE_SCREENSHOTS=1), so a test run leaves the tree clean.</summary>
    private static void SaveScreenshotWhenAsked(byte[] png)
    {
        if (Environment.GetEnvironmentVariable("ROUTER_WRITE_SCREENSHOTS") != "1")
        {
            return;
        }

        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Router.sln")))
        {
            dir = dir.Parent;
        }

        Assert.That(dir, Is.Not.Null, "repository root not found");
        var docs = Directory.CreateDirectory(Path.Combine(dir!.FullName, "docs"));
        File.WriteAllBytes(Path.Combine(docs.FullName, "dashboard.png"), png);
    }
}
