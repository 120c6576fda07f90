using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Net.Hosting;
using Router.Net.Tls;
using Router.Tests.Net.Tls;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>TLS at the edge (SNI, reload, limits) and to upstreams (custom CA, mTLS), over real loopback handshakes.</summary>
public sealed class TlsTests
{
    private TestPki _pki = null!;
    private TestUpstream _plain = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _pki = new TestPki();
        _plain = await TestUpstream.StartAsync("plain");
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        await _plain.DisposeAsync();
        _pki.Dispose();
    }

    private static RouterHost StartRouter(RouterConfig config, Action<RouterHostOptions>? configure = null)
    {
        var options = new RouterHostOptions
        {
            Admin = new IPEndPoint(IPAddress.Loopback, 0),
            HeartbeatPeriod = TimeSpan.FromMilliseconds(100),
        };
        configure?.Invoke(options);
        var host = new RouterHost(options, NullLoggerFactory.Instance);
        var outcome = host.Applier.Apply(config, "test");
        if (!outcome.Applied)
        {
            host.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw new InvalidOperationException("test config invalid: " + string.Join("; ", outcome.Errors));
        }

        host.Start();
        return host;
    }

    private static ListenerConfig TlsListener(params ListenerCertificateConfig[] certificates) => new()
    {
        Address = "127.0.0.1:0",
        Tls = new ListenerTlsConfig { Certificates = certificates },
    };

    private static ListenerCertificateConfig Cert((string CertFile, string KeyFile, X509Certificate2 _) created, params string[] hosts) =>
        new() { CertFile = created.CertFile, KeyFile = created.KeyFile, Hosts = hosts };

    private RouterConfig ToPlainUpstream(params ListenerConfig[] listeners) => new()
    {
        Listeners = listeners,
        Routes = [Route("all", "plain")],
        Clusters = [Cluster("plain", _plain)],
    };

    [Test]
    public async Task Sni_PicksTheCertificateForTheName_AndTheDefaultForUnknownNames()
    {
        var fallback = _pki.Create("sni-default", "default.test");
        var api = _pki.Create("sni-api", "api.test");
        var shop = _pki.Create("sni-shop", "*.shop.test");
        await using var router = StartRouter(ToPlainUpstream(TlsListener(Cert(fallback), Cert(api), Cert(shop))));
        var endPoint = router.TlsListenEndPoints[0];

        async Task<string> SubjectFor(string? name)
        {
            await using var client = await TlsTestClient.ConnectAsync(endPoint, name);
            return client.ServerCertificate.Subject;
        }

        Assert.That(await SubjectFor("api.test"), Is.EqualTo("CN=sni-api"));
        Assert.That(await SubjectFor("www.shop.test"), Is.EqualTo("CN=sni-shop"));
        Assert.That(await SubjectFor("unknown.test"), Is.EqualTo("CN=sni-default"));
        Assert.That(await SubjectFor(null), Is.EqualTo("CN=sni-default"), "no SNI at all gets the default");
    }

    [Test]
    public async Task UnknownSni_WithRejectUnknownSni_FailsTheHandshake()
    {
        var api = _pki.Create("strict-api", "api.test");
        var listener = new ListenerConfig
        {
            Address = "127.0.0.1:0",
            Tls = new ListenerTlsConfig { Certificates = [Cert(api)], RejectUnknownSni = true },
        };
        await using var router = StartRouter(ToPlainUpstream(listener));

        await using (var ok = await TlsTestClient.ConnectAsync(router.TlsListenEndPoints[0], "api.test"))
        {
            Assert.That(ok.ServerCertificate.Subject, Is.EqualTo("CN=strict-api"));
        }

        Assert.That(async () => await TlsTestClient.ConnectAsync(router.TlsListenEndPoints[0], "other.test"),
            Throws.InstanceOf<AuthenticationException>().Or.InstanceOf<IOException>());
    }

    [Test]
    public async Task Request_OverTls_ReachesTheUpstreamWithForwardedProtoHttps_AndNegotiatesHttp11()
    {
        var cert = _pki.Create("proto", "proto.test");
        await using var router = StartRouter(ToPlainUpstream(TlsListener(Cert(cert))));
        await using var client = await TlsTestClient.ConnectAsync(router.TlsListenEndPoints[0], "proto.test");

        var (status, _, body) = await client.GetAsync("/headers", "proto.test");

        Assert.That(status, Is.EqualTo(200));
        Assert.That(body, Does.Contain("X-Forwarded-Proto: https"));
        Assert.That(client.ApplicationProtocol.ToString(), Is.EqualTo("http/1.1"), "ALPN offers http/1.1");
        Assert.That(client.Protocol, Is.EqualTo(SslProtocols.Tls13).Or.EqualTo(SslProtocols.Tls12));

        var (again, _, _) = await client.GetAsync("/headers", "proto.test");
        Assert.That(again, Is.EqualTo(200), "the TLS connection stays alive for the next request");
    }

    [Test]
    public async Task Tls11Client_IsRefused_Tls12ClientIsServed()
    {
        var cert = _pki.Create("versions", "versions.test");
        await using var router = StartRouter(ToPlainUpstream(TlsListener(Cert(cert))));
        var endPoint = router.TlsListenEndPoints[0];

        // The server pins TLS 1.2 | 1.3. This OpenSSL may not even let a client offer TLS 1.1 (its default security
        // level forbids it), in which case the handshake fails on the client side first; either way no TLS 1.1
        // session comes up.
        Assert.That(router.Certificates.Listeners[0].Store.Default.Options.EnabledSslProtocols, Is.EqualTo(SslProtocols.Tls12 | SslProtocols.Tls13));
#pragma warning disable SYSLIB0039, CA5397 // TLS 1.1 on purpose: it must be refused.
        Assert.That(async () => await TlsTestClient.ConnectAsync(endPoint, "versions.test", SslProtocols.Tls11),
            Throws.InstanceOf<AuthenticationException>().Or.InstanceOf<IOException>().Or.InstanceOf<PlatformNotSupportedException>());
#pragma warning restore SYSLIB0039, CA5397

        await using var tls12 = await TlsTestClient.ConnectAsync(endPoint, "versions.test", SslProtocols.Tls12);
        Assert.That(tls12.Protocol, Is.EqualTo(SslProtocols.Tls12));
        Assert.That((await tls12.GetAsync("/")).Status, Is.EqualTo(200));
    }

    [Test]
    public async Task RenewedCertificate_AfterReload_IsServedToNewConnections_WhileOldConnectionKeepsWorking()
    {
        var first = _pki.Create("renew", "renew.test");
        var config = ToPlainUpstream(TlsListener(Cert(first)));
        await using var router = StartRouter(config);
        var endPoint = router.TlsListenEndPoints[0];
        await using var old = await TlsTestClient.ConnectAsync(endPoint, "renew.test");
        Assert.That((await old.GetAsync("/")).Status, Is.EqualTo(200));

        var renewed = _pki.Issue("renew", ["renew.test"]);
        TestPki.WriteTo(renewed, first.CertFile, first.KeyFile);
        var outcome = router.Applier.Apply(config, "reload");   // same config, as a touch or SIGHUP re-applies it

        Assert.That(outcome.Applied, Is.True);
        await using var fresh = await TlsTestClient.ConnectAsync(endPoint, "renew.test");
        Assert.That(fresh.ServerCertificate.Thumbprint, Is.EqualTo(renewed.Thumbprint), "new connections get the renewed certificate");
        Assert.That(old.ServerCertificate.Thumbprint, Is.EqualTo(first.Item3.Thumbprint));
        Assert.That((await old.GetAsync("/")).Status, Is.EqualTo(200), "the established connection keeps working");
    }

    [Test]
    public async Task BrokenCertificateFile_OnReload_KeepsTheOldCertificate_AndReportsTheError()
    {
        var cert = _pki.Create("broken", "broken.test");
        var config = ToPlainUpstream(TlsListener(Cert(cert)));
        await using var router = StartRouter(config);

        // A key that belongs to another certificate: a renewal half-copied.
        var other = _pki.Issue("other", ["other.test"]);
        await File.WriteAllTextAsync(cert.KeyFile, other.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        var outcome = router.Applier.Apply(config, "reload");

        Assert.That(outcome.Applied, Is.False);
        Assert.That(outcome.Errors.Single().Path, Is.EqualTo("$.listeners[0].tls.certificates[0].keyFile"));
        using var admin = new HttpClient();
        string status = await admin.GetStringAsync(new Uri($"http://{router.AdminEndPoint}/admin/config"));
        Assert.That(status, Does.Contain("$.listeners[0].tls.certificates[0].keyFile"), "/admin/config lastError names the file");
        await using var client = await TlsTestClient.ConnectAsync(router.TlsListenEndPoints[0], "broken.test");
        Assert.That(client.ServerCertificate.Thumbprint, Is.EqualTo(cert.Item3.Thumbprint), "the old certificate keeps serving");
        Assert.That((await client.GetAsync("/")).Status, Is.EqualTo(200));
    }

    [Test]
    public async Task PlainAndTlsListeners_ServeSideBySide()
    {
        var cert = _pki.Create("both", "both.test");
        await using var router = StartRouter(
            ToPlainUpstream(TlsListener(Cert(cert))),
            options => options.Listen.Add(new IPEndPoint(IPAddress.Loopback, 0)));

        using var plain = new HttpClient();
        using var plainResponse = await plain.GetAsync(new Uri($"http://{router.ListenEndPoints[0]}/headers"));
        string plainHeaders = await plainResponse.Content.ReadAsStringAsync();
        await using var tls = await TlsTestClient.ConnectAsync(router.TlsListenEndPoints[0], "both.test");
        var (status, _, tlsHeaders) = await tls.GetAsync("/headers");

        Assert.That(plainResponse.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(plainHeaders, Does.Contain("X-Forwarded-Proto: http").And.Not.Contains("X-Forwarded-Proto: https"));
        Assert.That(status, Is.EqualTo(200));
        Assert.That(tlsHeaders, Does.Contain("X-Forwarded-Proto: https"));
    }

    [Test]
    public async Task CommandLineTlsListener_ServesTheGivenCertificate()
    {
        var cert = _pki.Create("cli", "cli.test");
        await using var router = StartRouter(ToPlainUpstream(), options =>
        {
            options.ListenTls.Add(new IPEndPoint(IPAddress.Loopback, 0));
            options.TlsCertificate = new ListenerCertificateConfig { CertFile = cert.CertFile, KeyFile = cert.KeyFile };
        });

        await using var client = await TlsTestClient.ConnectAsync(router.TlsListenEndPoints[0], "cli.test");
        Assert.That(client.ServerCertificate.Thumbprint, Is.EqualTo(cert.Item3.Thumbprint));
        Assert.That((await client.GetAsync("/")).Status, Is.EqualTo(200));
    }

    [Test]
    public async Task StalledHandshakes_TimeOut_AndOverTheLimitAreClosedAtOnce()
    {
        var cert = _pki.Create("limits", "limits.test");
        await using var router = StartRouter(ToPlainUpstream(TlsListener(Cert(cert))), options =>
            options.TlsLimits = new TlsHandshakeLimits { HandshakeTimeout = TimeSpan.FromMilliseconds(500), MaxConcurrentHandshakes = 1 });
        var endPoint = router.TlsListenEndPoints[0];
        var gate = router.Certificates.Gate;

        // A client that connects and sends nothing holds the only handshake slot...
        using var stalled = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await stalled.ConnectAsync(endPoint);
        await WaitUntil(() => gate.InProgress == 1);

        // ...so the next connection is closed at once instead of queueing.
        using var refused = new Socket(SocketType.Stream, ProtocolType.Tcp);
        bool closed;
        try
        {
            await refused.ConnectAsync(endPoint);
            closed = await ReadUntilClosedAsync(refused, TimeSpan.FromSeconds(2));
        }
        catch (SocketException)
        {
            closed = true; // the reset can overtake the connect completion on loopback
        }

        Assert.That(closed, Is.True, "over the limit: closed");
        Assert.That(gate.Refused, Is.EqualTo(1));

        // The stalled one is cut at the handshake timeout, which frees the slot for a real client.
        Assert.That(await ReadUntilClosedAsync(stalled, TimeSpan.FromSeconds(5)), Is.True, "stalled handshake timed out");
        Assert.That(router.Certificates.Listeners[0].Timeouts, Is.EqualTo(1));
        await using var client = await TlsTestClient.ConnectAsync(endPoint, "limits.test");
        Assert.That((await client.GetAsync("/")).Status, Is.EqualTo(200));
    }

    [Test]
    public async Task UpstreamWithCertificateFromUnknownCa_IsRefused502_UntilItsCaIsConfigured()
    {
        var upstreamCert = _pki.Issue("upstream", ["upstream.test"]);
        await using var upstream = await TestUpstream.StartAsync("secure", configureListen: listen => listen.UseHttps(upstreamCert));
        var cluster = Cluster("secure", upstream) with { Tls = new UpstreamTlsConfig { ServerName = "upstream.test" } };
        var config = new RouterConfig { Routes = [Route("all", "secure")], Clusters = [cluster] };
        await using var router = StartRouter(config, options => options.Listen.Add(new IPEndPoint(IPAddress.Loopback, 0)));
        using var http = new HttpClient { BaseAddress = new Uri($"http://{router.ListenEndPoints[0]}/") };

        using (var refused = await http.GetAsync(new Uri("/headers", UriKind.Relative)))
        {
            Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.BadGateway), "the test CA is not in the system store");
        }

        var trusted = config with { Clusters = [cluster with { Tls = cluster.Tls! with { CaFile = _pki.CaFile } }] };
        Assert.That(router.Applier.Apply(trusted, "test").Applied, Is.True);
        using var served = await http.GetAsync(new Uri("/headers", UriKind.Relative));
        Assert.That(served.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(served.Headers.GetValues("X-Upstream").Single(), Is.EqualTo("secure"));

        long connections = upstream.AcceptedConnections;
        using var again = await http.GetAsync(new Uri("/", UriKind.Relative));
        Assert.That(again.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(upstream.AcceptedConnections, Is.EqualTo(connections), "the pooled TLS connection is reused");
    }

    [Test]
    public async Task HealthChecks_OfATlsCluster_ProbeOverTls_AndSeeFailures()
    {
        var upstreamCert = _pki.Issue("probed", ["probed.test"]);
        await using var upstream = await TestUpstream.StartAsync("probed", configureListen: listen => listen.UseHttps(upstreamCert));
        var check = new HealthCheckConfig { Path = "/healthz", IntervalMs = 100, TimeoutMs = 1000, UnhealthyThreshold = 2, HealthyThreshold = 1 };
        var cluster = Cluster("probed", upstream) with
        {
            Tls = new UpstreamTlsConfig { ServerName = "probed.test", CaFile = _pki.CaFile },
            HealthCheck = check,
        };
        await using var router = StartRouter(new RouterConfig { Routes = [Route("all", "probed")], Clusters = [cluster] });
        var destination = router.Table.Current!.Clusters[0].Destinations[0];

        // Healthy probes over TLS reach the upstream (a plain-text probe would fail the handshake and mark it down).
        long before = upstream.Requests;
        Assert.That(await Eventually.TrueAsync(() => upstream.Requests >= before + 3, TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(destination.Health!.IsHealthy, Is.True);

        upstream.Mode = UpstreamMode.Fail500;
        Assert.That(await Eventually.TrueAsync(() => !destination.Health.IsHealthy, TimeSpan.FromSeconds(10)), Is.True);
    }

    [Test]
    public async Task UpstreamRequiringClientCertificate_IsServedWithMutualTls()
    {
        var upstreamCert = _pki.Issue("mtls-upstream", ["mtls.test"]);
        var clientCert = _pki.Issue("router-client", ["router.test"], client: true);
        var (clientCertFile, clientKeyFile) = _pki.Write(clientCert, "router-client");
        var ca = _pki.Ca;
        await using var upstream = await TestUpstream.StartAsync("mtls", configureListen: listen => listen.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificate = upstreamCert,
            ClientCertificateMode = ClientCertificateMode.RequireCertificate,
            ClientCertificateValidation = (certificate, _, _) => certificate.Issuer == ca.Subject,
        }));
        var tls = new UpstreamTlsConfig { ServerName = "mtls.test", CaFile = _pki.CaFile };
        var cluster = Cluster("mtls", upstream) with { Tls = tls };
        var config = new RouterConfig { Routes = [Route("all", "mtls")], Clusters = [cluster] };
        await using var router = StartRouter(config, options => options.Listen.Add(new IPEndPoint(IPAddress.Loopback, 0)));
        using var http = new HttpClient { BaseAddress = new Uri($"http://{router.ListenEndPoints[0]}/") };

        using (var withoutClientCert = await http.GetAsync(new Uri("/", UriKind.Relative)))
        {
            Assert.That(withoutClientCert.StatusCode, Is.EqualTo(HttpStatusCode.BadGateway));
        }

        var mutual = config with { Clusters = [cluster with { Tls = tls with { ClientCertFile = clientCertFile, ClientKeyFile = clientKeyFile } }] };
        Assert.That(router.Applier.Apply(mutual, "test").Applied, Is.True);
        using var served = await http.GetAsync(new Uri("/", UriKind.Relative));
        Assert.That(served.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await served.Content.ReadAsStringAsync(), Is.EqualTo("mtls GET /"));
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail("condition not reached in 5 s");
            }

            await Task.Delay(10);
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
            return true; // reset counts as closed
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
