using NUnit.Framework;
using Router.Core.Configuration;
using Router.Net.Tls;

namespace Router.Tests.Net.Tls;

public sealed class CertificateStoreTests
{
    private TestPki _pki = null!;

    [OneTimeSetUp]
    public void CreatePki() => _pki = new TestPki();

    [OneTimeTearDown]
    public void DeletePki() => _pki.Dispose();

    private ServerCertificate Load(string name, params string[] dnsNames)
    {
        var (cert, key, _) = _pki.Create(name, dnsNames);
        return ServerCertificate.Load(cert, key, previous: null);
    }

    [Test]
    public void Select_PrefersExactName_ThenLongestWildcard_ThenDefault()
    {
        var fallback = Load("fallback", "fallback.test");
        var exact = Load("exact", "api.example.test");
        var wide = Load("wide", "*.example.test");
        var narrow = Load("narrow", "*.eu.example.test");
        var store = new CertificateStore([fallback, exact, wide, narrow], [[], [], [], []], defaultIndex: 0, rejectUnknownSni: false);

        Assert.Multiple(() =>
        {
            Assert.That(store.Select("api.example.test"), Is.SameAs(exact));
            Assert.That(store.Select("API.Example.Test."), Is.SameAs(exact), "case and a trailing dot do not matter");
            Assert.That(store.Select("shop.example.test"), Is.SameAs(wide));
            Assert.That(store.Select("a.b.example.test"), Is.SameAs(wide), "a wildcard matches any depth, as routes do");
            Assert.That(store.Select("shop.eu.example.test"), Is.SameAs(narrow));
            Assert.That(store.Select("other.test"), Is.SameAs(fallback));
            Assert.That(store.Select(null), Is.SameAs(fallback));
        });
    }

    [Test]
    public void Select_UsesConfiguredHosts_InsteadOfCertificateNames()
    {
        var a = Load("a", "a.test");
        var b = Load("b", "b.test");
        var store = new CertificateStore([a, b], [[], ["a.test"]], defaultIndex: 0, rejectUnknownSni: false);

        Assert.That(store.Select("a.test"), Is.SameAs(b), "the config's hosts decide, not the certificate's names");
        Assert.That(store.Select("b.test"), Is.SameAs(a), "b's own SAN is not used when hosts is given; default serves");
    }

    [Test]
    public void Select_WithRejectUnknownSni_ReturnsNullForUnknownOrMissingName()
    {
        var a = Load("a", "a.test");
        var store = new CertificateStore([a], [[]], defaultIndex: 0, rejectUnknownSni: true);

        Assert.That(store.Select("a.test"), Is.SameAs(a));
        Assert.That(store.Select("b.test"), Is.Null);
        Assert.That(store.Select(null), Is.Null);
    }

    [Test]
    public void Load_WithKeyOfAnotherCertificate_SaysTheKeyFileIsWrong()
    {
        var (certA, _, _) = _pki.Create("pair-a", "a.test");
        var (_, keyB, _) = _pki.Create("pair-b", "b.test");

        var ex = Assert.Throws<CertificateLoadException>(() => ServerCertificate.Load(certA, keyB, previous: null));
        Assert.That(ex!.File, Is.EqualTo(CertificateFile.Key));
    }

    [Test]
    public void Load_WithUnchangedFiles_ReusesTheLoadedCertificate()
    {
        var (cert, key, _) = _pki.Create("same", "same.test");
        var first = ServerCertificate.Load(cert, key, previous: null);

        Assert.That(ServerCertificate.Load(cert, key, first), Is.SameAs(first));
        TestPki.WriteTo(_pki.Issue("same", ["same.test"]), cert, key);
        Assert.That(ServerCertificate.Load(cert, key, first), Is.Not.SameAs(first), "new content is loaded");
    }

    [Test]
    public void Validate_ReportsEveryUnusableFile_WithItsJsonPath()
    {
        var (cert, key, _) = _pki.Create("ok", "ok.test");
        var config = new RouterConfig
        {
            Listeners =
            [
                new ListenerConfig
                {
                    Address = "127.0.0.1:0",
                    Tls = new ListenerTlsConfig
                    {
                        Certificates =
                        [
                            new ListenerCertificateConfig { CertFile = cert, KeyFile = key },
                            new ListenerCertificateConfig { CertFile = Path.Combine(_pki.Directory, "missing.crt"), KeyFile = key },
                        ],
                    },
                },
            ],
            Clusters = [new ClusterConfig { Id = "c", Tls = new UpstreamTlsConfig { CaFile = key } }],
        };

        var listenerErrors = new ListenerCertificates(TlsHandshakeLimits.Default, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance).Validate(config);
        var upstreamErrors = new UpstreamTlsRegistry().Validate(config);

        Assert.That(listenerErrors.Single().Path, Is.EqualTo("$.listeners[0].tls.certificates[1].certFile"));
        Assert.That(upstreamErrors.Single().Path, Is.EqualTo("$.clusters[0].tls.caFile"));
    }
}
