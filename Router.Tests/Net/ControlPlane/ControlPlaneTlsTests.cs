using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using NUnit.Framework;
using Router.Net.ControlPlane;
using Router.Tests.ControlPlane;

namespace Router.Tests.Net.ControlPlane;

public sealed class ControlPlaneTlsTests
{
    [Test]
    public async Task Router_OverWss_TrustsTheControlPlaneThroughTheCaFile()
    {
        using var dir = new TempDir();
        var (caFile, certFile, keyFile) = WriteCaAndServerCertificate(dir);
        await using var cp = await TestControlPlane.StartAsync(dir.Sub("data"), certFile: certFile, keyFile: keyFile);
        var sink = new FakeConfigSink();
        await using var client = new ControlPlaneClient(ControlPlaneClientTests.Options(cp, "tls-node", null, caFile: caFile), sink);
        var applied = sink.NextApplyAsync();

        client.Start();
        var (version, _) = await PutOverTlsAsync(cp, caFile);
        var result = await applied;

        Assert.That(cp.RouterUri.Scheme, Is.EqualTo("wss"));
        Assert.That(result.Applied, Is.True);
        Assert.That(result.Version, Is.EqualTo(version));
    }

    [Test]
    public async Task Router_OverWss_WithoutTheCa_RefusesTheServer()
    {
        using var dir = new TempDir();
        var (_, certFile, keyFile) = WriteCaAndServerCertificate(dir);
        var (otherCa, _, _) = WriteCaAndServerCertificate(dir, "other");
        await using var cp = await TestControlPlane.StartAsync(dir.Sub("data"), certFile: certFile, keyFile: keyFile);
        var sink = new FakeConfigSink();
        await using var client = new ControlPlaneClient(ControlPlaneClientTests.Options(cp, "tls-node", null, caFile: otherCa), sink);
        var failed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        client.StateChanged += s =>
        {
            if (s == ControlPlaneState.Disconnected)
            {
                failed.TrySetResult();
            }
        };

        client.Start();
        await failed.Task.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.That(client.ConnectCount, Is.Zero);
        Assert.That(client.LastError, Is.Not.Null);
    }

    private static async Task<(long Version, string Hash)> PutOverTlsAsync(TestControlPlane cp, string caFile)
    {
        // The test's admin client must trust the same private CA.
        var ca = X509Certificate2.CreateFromPem(File.ReadAllText(caFile));
        using var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, cert, _, _) =>
            {
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(ca);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return cert is not null && chain.Build(cert);
            },
        };
        using var http = new HttpClient(handler) { BaseAddress = cp.BaseUri };
        http.DefaultRequestHeaders.Authorization = new("Bearer", TestControlPlane.AdminToken);
        using var response = await http.PutAsync(new Uri("/api/config", UriKind.Relative), new StringContent(TestConfigs.Valid(9001)));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using var doc = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return (doc.RootElement.GetProperty("version").GetInt64(), doc.RootElement.GetProperty("hash").GetString()!);
    }

    /// <summary>A private CA and a server certificate for 127.0.0.1 signed by it, as PEM files.</summary>
    private static (string CaFile, string CertFile, string KeyFile) WriteCaAndServerCertificate(TempDir dir, string prefix = "")
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=Router Test CA " + prefix, caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));

        using var serverKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var serverRequest = new CertificateRequest("CN=127.0.0.1", serverKey, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        serverRequest.CertificateExtensions.Add(san.Build());
        serverRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var server = serverRequest.Create(ca, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddHours(12), [1, 2, 3, 4, 5, 6, 7, 8]);

        var caFile = dir.Sub(prefix + "ca.pem");
        var certFile = dir.Sub(prefix + "server.pem");
        var keyFile = dir.Sub(prefix + "server.key");
        File.WriteAllText(caFile, ca.ExportCertificatePem());
        File.WriteAllText(certFile, server.ExportCertificatePem());
        File.WriteAllText(keyFile, serverKey.ExportPkcs8PrivateKeyPem());
        return (caFile, certFile, keyFile);
    }
}
