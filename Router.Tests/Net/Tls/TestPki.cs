using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Router.Tests.Net.Tls;

/// <summary>
/// A throw-away certificate authority for tests: issues ECDSA P-256 certificates (fast to make and to handshake)
/// and writes them as PEM files into a temp directory, as an operator would have them on disk.
/// </summary>
internal sealed class TestPki : IDisposable
{
    private readonly ECDsa _caKey;

    public TestPki(string name = "Router Test CA")
    {
        Directory = Path.Combine(Path.GetTempPath(), "router-tls-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
        _caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + name, _caKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        Ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1));
        CaFile = Path.Combine(Directory, "ca-" + Guid.NewGuid().ToString("N")[..6] + ".pem");
        File.WriteAllText(CaFile, Ca.ExportCertificatePem());
    }

    public string Directory { get; }

    public X509Certificate2 Ca { get; }

    public string CaFile { get; }

    /// <summary>Issues a certificate for <paramref name="dnsNames"/> (and 127.0.0.1) and returns it with its key.</summary>
    /// <remarks>Valid from a day ago for 30 days unless <paramref name="notBefore"/>/<paramref name="notAfter"/> say otherwise.</remarks>
    public X509Certificate2 Issue(string subject, string[] dnsNames, bool client = false, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + subject, key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in dnsNames)
        {
            san.AddDnsName(name);
        }

        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid(client ? "1.3.6.1.5.5.7.3.2" : "1.3.6.1.5.5.7.3.1")], false));
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7F;
        using var issued = request.Create(Ca.SubjectName, X509SignatureGenerator.CreateForECDsa(_caKey),
            notBefore ?? DateTimeOffset.UtcNow.AddDays(-1), notAfter ?? DateTimeOffset.UtcNow.AddDays(30), serial);
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>Writes a certificate and its key as PEM files; returns their paths.</summary>
    public (string CertFile, string KeyFile) Write(X509Certificate2 certificate, string name)
    {
        string certFile = Path.Combine(Directory, name + ".crt");
        string keyFile = Path.Combine(Directory, name + ".key");
        WriteTo(certificate, certFile, keyFile);
        return (certFile, keyFile);
    }

    public static void WriteTo(X509Certificate2 certificate, string certFile, string keyFile)
    {
        File.WriteAllText(certFile, certificate.ExportCertificatePem());
        File.WriteAllText(keyFile, certificate.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>Issues and writes in one step.</summary>
    public (string CertFile, string KeyFile, X509Certificate2 Certificate) Create(string name, params string[] dnsNames)
    {
        var certificate = Issue(name, dnsNames);
        var (certFile, keyFile) = Write(certificate, name);
        return (certFile, keyFile, certificate);
    }

    public void Dispose()
    {
        _caKey.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
