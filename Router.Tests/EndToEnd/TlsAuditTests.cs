using System.Net;
using System.Text.Json;
using NUnit.Framework;
using Router.Tests.Net.Tls;
using Router.Tests.Support;

namespace Router.Tests.EndToEnd;

/// <summary>
/// TLS behaviour an operator checks on a real router process: certificate renewal by renaming files over the old
/// ones and SIGHUP, with real TLS clients.
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
