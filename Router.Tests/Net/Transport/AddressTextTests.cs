using System.Net;
using System.Net.Sockets;
using System.Text;
using NUnit.Framework;
using Router.Net.Transport;

namespace Router.Tests.Net.Transport;

/// <summary>The client address as accept4 reports it (a Linux sockaddr), formatted for X-Forwarded-For and the access log.</summary>
public sealed class AddressTextTests
{
    [TestCase("127.0.0.1")]
    [TestCase("10.0.0.255")]
    [TestCase("192.168.1.10")]
    [TestCase("0.0.0.0")]
    [TestCase("255.255.255.255")]
    [TestCase("8.80.100.9")]
    public void IPv4_IsFormattedAsTheRuntimeFormatsIt(string address)
    {
        var text = AddressText.Format(SockaddrIn(IPAddress.Parse(address)));

        Assert.That(Encoding.ASCII.GetString(text), Is.EqualTo(address));
    }

    [Test]
    public void IPv4MappedIPv6_ReadsAsIPv4()
    {
        var mapped = IPAddress.Parse("192.0.2.33").MapToIPv6();

        Assert.That(Encoding.ASCII.GetString(AddressText.Format(SockaddrIn6(mapped))), Is.EqualTo("192.0.2.33"));
    }

    [TestCase("::1")]
    [TestCase("2001:db8::8a2e:370:7334")]
    [TestCase("fe80::1")]
    public void IPv6_IsFormattedAsTheRuntimeFormatsIt(string address)
    {
        Assert.That(Encoding.ASCII.GetString(AddressText.Format(SockaddrIn6(IPAddress.Parse(address)))), Is.EqualTo(address));
    }

    [Test]
    public void ALinkLocalIPv6Address_KeepsItsScope()
    {
        var scoped = new IPAddress(IPAddress.Parse("fe80::1").GetAddressBytes(), 2);

        Assert.That(Encoding.ASCII.GetString(AddressText.Format(SockaddrIn6(scoped))), Is.EqualTo(scoped.ToString()).And.EqualTo("fe80::1%2"));
    }

    [Test]
    public void AnUnknownFamilyOrATruncatedAddress_IsUnknown()
    {
        var unix = new byte[16];
        unix[0] = 1; // AF_UNIX

        Assert.Multiple(() =>
        {
            Assert.That(Encoding.ASCII.GetString(AddressText.Format(unix)), Is.EqualTo("unknown"));
            Assert.That(Encoding.ASCII.GetString(AddressText.Format(SockaddrIn(IPAddress.Loopback).AsSpan(0, 6))), Is.EqualTo("unknown"));
            Assert.That(Encoding.ASCII.GetString(AddressText.Format(ReadOnlySpan<byte>.Empty)), Is.EqualTo("unknown"));
        });
    }

    [Test]
    public void AnEndPoint_IsFormattedWithoutTheMappedPrefix()
    {
        var endPoint = new IPEndPoint(IPAddress.Parse("203.0.113.7").MapToIPv6(), 443);

        Assert.Multiple(() =>
        {
            Assert.That(Encoding.ASCII.GetString(AddressText.Format(endPoint)), Is.EqualTo("203.0.113.7"));
            Assert.That(Encoding.ASCII.GetString(AddressText.Format((EndPoint?)null)), Is.EqualTo("unknown"));
        });
    }

    // struct sockaddr_in: family (host order), port (network order), 4 address bytes, 8 bytes of padding.
    private static byte[] SockaddrIn(IPAddress address)
    {
        Assert.That(address.AddressFamily, Is.EqualTo(AddressFamily.InterNetwork));
        var bytes = new byte[16];
        bytes[0] = 2;
        bytes[2] = 0x1f;
        bytes[3] = 0x90;
        address.GetAddressBytes().CopyTo(bytes, 4);
        return bytes;
    }

    // struct sockaddr_in6: family, port, flow info (4), 16 address bytes, scope id (4).
    private static byte[] SockaddrIn6(IPAddress address)
    {
        var bytes = new byte[28];
        bytes[0] = 10;
        address.GetAddressBytes().CopyTo(bytes, 8);
        BitConverter.TryWriteBytes(bytes.AsSpan(24), (uint)address.ScopeId);
        return bytes;
    }
}
