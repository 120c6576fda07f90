using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Net.Hosting;
using Router.Tests.Net.Tls;
using Router.Tests.Support;

namespace Router.Tests.EndToEnd;

/// <summary>
/// TLS behaviour an operator checks with real clients: certificate renewal by renaming files over the old ones and
/// SIGHUP (a real router process), ALPN, and what a TLS listener does with clients that do not speak TLS.
/// </summary>
public sealed class TlsAuditTests
{
    private TestPki _pki = null!;
    private TestUpstream _upstream = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _pki = new TestPki();
        _upstream = await TestUpstream.StartAsync("plain");
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        await _upstream.DisposeAsync();
        _pki.Dispose();
    }

    [Test]
    public async Task ExpiredCertificate_RenamedOverTheServedOne_IsRejectedOnSighup_AndTheValidOneKeepsServing()
    {
        var served = _pki.Create("live", "live.test");
        var tlsEndPoint = new IPEndPoint(IPAddress.Loopback, RouterProcess.FreePort());
        string configFile = Path.Combine(_pki.Directory, "live-router.json");
        await File.WriteAllTextAsync(configFile, JsonSerializer.Serialize(new
        {
            listeners = new[] { new { address = tlsEndPoint.ToString(), tls = new { certificates = new[] { new { certFile = served.CertFile, keyFile = served.KeyFile } } } } },
            routes = new[] { new { id = "r", match = new { pathPrefix = "/" }, cluster = "c" } },
            clusters = new[] { new { id = "c", destinations = new[] { new { address = _upstream.Address } } } },
        }));
        await using var router = await RouterProcess.StartAsync(["--config", configFile]);
        await using var established = await TlsTestClient.ConnectAsync(tlsEndPoint, "live.test");
        Assert.That(established.ServerCertificate.Thumbprint, Is.EqualTo(served.Certificate.Thumbprint));

        // A renewal that copies an old, expired certificate into place: new files renamed over the served ones.
        var expired = _pki.Issue("live", ["live.test"], notBefore: DateTimeOffset.UtcNow.AddDays(-60), notAfter: DateTimeOffset.UtcNow.AddDays(-1));
        RenameOver(expired, served.CertFile, served.KeyFile);
        router.Signal(1); // SIGHUP

        string? lastError = null;
        Assert.That(await Eventually.TrueAsync(() => (lastError = LastError(router)) is not null, TimeSpan.FromSeconds(10)), Is.True,
            "the reload with an expired certificate is rejected and shows under lastError:\n" + router.Output);
        Assert.That(lastError, Does.Contain("$.listeners[0].tls.certificates[0].certFile").And.Contain("expired"));
        await using (var fresh = await TlsTestClient.ConnectAsync(tlsEndPoint, "live.test"))
        {
            Assert.That(fresh.ServerCertificate.Thumbprint, Is.EqualTo(served.Certificate.Thumbprint), "the valid certificate keeps serving");
            Assert.That((await fresh.GetAsync("/")).Status, Is.EqualTo(200));
        }

        // The real renewal, renamed over the same files: new handshakes get it, the established connection goes on.
        var renewed = _pki.Issue("live", ["live.test"]);
        RenameOver(renewed, served.CertFile, served.KeyFile);
        router.Signal(1);
        Assert.That(await Eventually.TrueAsync(() => HandshakeThumbprint(tlsEndPoint) == renewed.Thumbprint, TimeSpan.FromSeconds(10)), Is.True,
            "the renewed certificate is served after SIGHUP:\n" + router.Output);
        Assert.That((await established.GetAsync("/")).Status, Is.EqualTo(200), "the connection made before both reloads keeps working");
    }

    [Test]
    public async Task Alpn_OfferingH2AndHttp11_GetsHttp11_OfferingOnlyH2_IsRefusedNotToldH2()
    {
        var cert = _pki.Create("alpn", "alpn.test");
        await using var router = StartRouter(cert);
        var endPoint = router.TlsListenEndPoints[0];

        await using (var both = await ConnectAsync(endPoint, [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11]))
        {
            Assert.That(both.NegotiatedApplicationProtocol, Is.EqualTo(SslApplicationProtocol.Http11));
        }

        // RFC 7301: no protocol in common is a no_application_protocol alert, never a pretend "h2".
        Assert.That(async () => await ConnectAsync(endPoint, [SslApplicationProtocol.Http2]),
            Throws.InstanceOf<AuthenticationException>().Or.InstanceOf<IOException>());
    }

    [TestCase("another protocol", "SSH-2.0-OpenSSH_9.6\r\n")]
    public async Task NonTlsBytes_OnTheTlsPort_AreClosedAtOnce_AndFreeTheirHandshakeSlot(string what, string bytes)
    {
        var cert = _pki.Create("nontls", "nontls.test");
        await using var router = StartRouter(cert);
        var endPoint = router.TlsListenEndPoints[0];

        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endPoint);
        await socket.SendAsync(Encoding.Latin1.GetBytes(bytes));
        var started = DateTime.UtcNow;
        Assert.That(await ReadUntilClosedAsync(socket, TimeSpan.FromSeconds(5)), Is.True, what + ": the connection is closed");
        Assert.That(DateTime.UtcNow - started, Is.LessThan(TimeSpan.FromSeconds(2)), what + ": closed at once, not at the 10 s handshake timeout");

        Assert.That(await Eventually.TrueAsync(() => router.Certificates.Gate.InProgress == 0, TimeSpan.FromSeconds(5)), Is.True, "the handshake slot is free again");
        Assert.That(router.Certificates.Listeners[0].Failures, Is.EqualTo(1));
        Assert.That(router.Certificates.Listeners[0].Timeouts, Is.Zero);
        await using var client = await TlsTestClient.ConnectAsync(endPoint, "nontls.test");
        Assert.That((await client.GetAsync("/")).Status, Is.EqualTo(200), "the listener goes on serving");
    }

    [Test]
    public async Task PlainHttp_OnTheTlsPort_IsAnswered400InPlainText_ThenClosedWithAFin_AndFreesItsHandshakeSlot()
    {
        var cert = _pki.Create("plain", "plain.test");
        await using var router = StartRouter(cert);
        var endPoint = router.TlsListenEndPoints[0];

        using (var client = await RawHttpClient.ConnectAsync(endPoint))
        {
            await client.SendAsync("GET / HTTP/1.1\r\nHost: plain.test\r\n\r\n");
            var response = await client.ReadResponseAsync();
            Assert.That(response.StatusCode, Is.EqualTo(400));
            Assert.That(response.BodyText, Does.Contain("HTTPS"), "says why");
            Assert.That(response.Header("Connection"), Is.EqualTo("close"));

            // Shut our side: the router was draining what we might still send, and now closes with a FIN.
            client.Socket.Shutdown(SocketShutdown.Send);
            var buffer = new byte[16];
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            Assert.That(await client.Socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token), Is.Zero, "a FIN, not a reset");
        }

        Assert.That(await Eventually.TrueAsync(() => router.Certificates.Gate.InProgress == 0, TimeSpan.FromSeconds(5)), Is.True, "the handshake slot is free again");
        Assert.That(router.Certificates.Listeners[0].Failures, Is.EqualTo(1));
        await using var tls = await TlsTestClient.ConnectAsync(endPoint, "plain.test");
        Assert.That((await tls.GetAsync("/")).Status, Is.EqualTo(200), "the listener goes on serving");
    }

    [Test]
    public async Task Metrics_CountHandshakesByListenerAndResult()
    {
        var cert = _pki.Create("counted", "counted.test");
        await using var router = StartRouter(cert);
        var endPoint = router.TlsListenEndPoints[0];
        await using (var client = await TlsTestClient.ConnectAsync(endPoint, "counted.test"))
        {
            Assert.That((await client.GetAsync("/")).Status, Is.EqualTo(200));
        }

        using (var socket = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(endPoint);
            await socket.SendAsync(Encoding.Latin1.GetBytes("SSH-2.0-OpenSSH_9.6\r\n"));
            Assert.That(await ReadUntilClosedAsync(socket, TimeSpan.FromSeconds(5)), Is.True);
        }

        Assert.That(await Eventually.TrueAsync(() => router.Certificates.Listeners[0].Failures == 1, TimeSpan.FromSeconds(5)), Is.True);
        var listener = router.Certificates.Listeners[0].Name;
        using var http = new HttpClient();
        var samples = PrometheusText.Parse(await http.GetStringAsync(new Uri($"http://{router.AdminEndPoint}/metrics")));
        Assert.Multiple(() =>
        {
            Assert.That(samples.Value("router_tls_handshakes_total", ("listener", listener), ("result", "success")), Is.EqualTo(1));
            Assert.That(samples.Value("router_tls_handshakes_total", ("listener", listener), ("result", "failure")), Is.EqualTo(1));
            Assert.That(samples.Value("router_tls_handshakes_total", ("listener", listener), ("result", "timeout")), Is.Zero);
            Assert.That(samples.Any(s => s.Name == "router_tls_handshakes_refused_total"), Is.True);
        });
    }

    private RouterHost StartRouter((string CertFile, string KeyFile, System.Security.Cryptography.X509Certificates.X509Certificate2 _) cert)
    {
        var host = new RouterHost(new RouterHostOptions { Admin = new IPEndPoint(IPAddress.Loopback, 0) }, NullLoggerFactory.Instance);
        var config = new RouterConfig
        {
            Listeners = [new ListenerConfig { Address = "127.0.0.1:0", Tls = new ListenerTlsConfig { Certificates = [new ListenerCertificateConfig { CertFile = cert.CertFile, KeyFile = cert.KeyFile }] } }],
            Routes = [TestConfigs.Route("all", "plain")],
            Clusters = [TestConfigs.Cluster("plain", _upstream)],
        };
        Assert.That(host.Applier.Apply(config, "test").Applied, Is.True);
        host.Start();
        return host;
    }

    private static async Task<SslStream> ConnectAsync(IPEndPoint endPoint, List<SslApplicationProtocol> alpn)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endPoint);
        var stream = new SslStream(new NetworkStream(socket, ownsSocket: true));
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await stream.AuthenticateAsClientAsync(
                new SslClientAuthenticationOptions
                {
                    TargetHost = "alpn.test",
                    ApplicationProtocols = alpn,
#pragma warning disable CA5359 // the test checks ALPN, not trust
                    RemoteCertificateValidationCallback = static (_, _, _, _) => true,
#pragma warning restore CA5359
                },
                timeout.Token);
            return stream;
        }
        catch
        {
            await stream.DisposeAsync();
            throw;
        }
    }

    private static async Task<bool> ReadUntilClosedAsync(Socket socket, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var buffer = new byte[1024];
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token) > 0)
            {
            }

            return true;
        }
        catch (SocketException)
        {
            return true; // a reset is a close too
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Writes the pair next to the target files and renames them over (what cert-manager or certbot do).</summary>
    private static void RenameOver(System.Security.Cryptography.X509Certificates.X509Certificate2 certificate, string certFile, string keyFile)
    {
        string tmpCert = certFile + ".new", tmpKey = keyFile + ".new";
        TestPki.WriteTo(certificate, tmpCert, tmpKey);
        File.Move(tmpKey, keyFile, overwrite: true);
        File.Move(tmpCert, certFile, overwrite: true);
    }

    /// <summary><c>lastError</c> of GET /admin/config as text, or null when there is none.</summary>
    private static string? LastError(RouterProcess router)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        using var doc = JsonDocument.Parse(http.GetStringAsync(new Uri($"http://{router.AdminEndPoint}/admin/config")).GetAwaiter().GetResult());
        var error = doc.RootElement.GetProperty("lastError");
        return error.ValueKind == JsonValueKind.Null ? null : error.GetRawText();
    }

    private static string HandshakeThumbprint(IPEndPoint endPoint)
    {
        var client = TlsTestClient.ConnectAsync(endPoint, "live.test").GetAwaiter().GetResult();
        try
        {
            return client.ServerCertificate.Thumbprint;
        }
        finally
        {
            client.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }
}
