using System.Buffers;
using System.Text;
using NUnit.Framework;
using Router.Net.Http1;
using static Router.Tests.Net.Http1.TestInput;

namespace Router.Tests.Net.Http1;

public sealed class PathNormalizerTests
{
    // RFC 3986 §5.2.4 on absolute paths, plus dots written as %2e (RFC 3986 §6.2.2.2).
    [TestCase("/", "/")]
    [TestCase("/a/b", "/a/b")]
    [TestCase("/a/./b", "/a/b")]
    [TestCase("/a/../b", "/b")]
    [TestCase("/a/b/..", "/a/")]
    [TestCase("/a/.", "/a/")]
    [TestCase("/..", "/")]
    [TestCase("/../../x", "/x")]
    [TestCase("/a/b/c/./../../g", "/a/g")]
    [TestCase("/a//../b", "/a/b")]
    [TestCase("/a/%2e%2e/b", "/b")]
    [TestCase("/a/%2E./b", "/b")]
    [TestCase("/a/.%2e/b", "/b")]
    [TestCase("/a/%2e/b", "/a/b")]
    [TestCase("/a/.../b", "/a/.../b")]
    [TestCase("/a/..b/c", "/a/..b/c")]
    [TestCase("/a/%2ex/b", "/a/%2ex/b")]
    [TestCase("/a/%2", "/a/%2")]
    [TestCase("/a/%2f../b", "/a/%2f../b")]
    [TestCase("/.well-known/x", "/.well-known/x")]
    [TestCase("/a//b", "/a//b")]
    [TestCase("/public/..;/admin", "/admin")]
    [TestCase("/public/..;jsessionid=1/admin", "/admin")]
    [TestCase("/a/.;x/b", "/a/b")]
    [TestCase("/a/b;v=1/c", "/a/b;v=1/c")]
    [TestCase("/a/;/b", "/a/;/b")]
    public void RemoveDotSegments(string path, string expected)
    {
        var bytes = Encoding.ASCII.GetBytes(path);
        int length = PathNormalizer.RemoveDotSegments(bytes);
        Assert.That(Encoding.ASCII.GetString(bytes, 0, length), Is.EqualTo(expected));
    }

    [TestCase("GET /a/../b?q=/../ HTTP/1.1\r\nHost: x\r\n\r\n", "/a/../b?q=/../", "/b", "?q=/../")]
    [TestCase("GET http://x/p/./%2e%2e/q HTTP/1.1\r\nHost: x\r\n\r\n", "http://x/p/./%2e%2e/q", "/q", "")]
    [TestCase("GET /static/app.js HTTP/1.1\r\nHost: x\r\n\r\n", "/static/app.js", "/static/app.js", "")]
    public void TheParser_RoutesTheNormalisedPath_AndKeepsTheTargetAsReceived(string request, string target, string path, string query)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Bytes(request)));
        var head = new HttpRequestHead();
        Assert.That(Http1Parser.TryParseRequestHead(ref reader, head, HttpLimits.Default), Is.True);
        Assert.Multiple(() =>
        {
            Assert.That(Text(head.Buffer, head.Target), Is.EqualTo(target), "the target as received (for the access log)");
            Assert.That(Text(head.Buffer, head.Path), Is.EqualTo(path));
            Assert.That(Text(head.Buffer, head.Query), Is.EqualTo(query));
            Assert.That(Text(head.Buffer, head.Host), Is.EqualTo("x"));
        });
    }

    [Test]
    public void AHeadThatFillsItsBuffer_MovesToALargerOne_WithEveryFieldIntact()
    {
        // The normalised path goes after the head; a head of exactly the first buffer's size (2 KiB) needs a larger one.
        const string Shape = "GET /a/../b HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n";
        string padding = new('p', 2048 - Shape.Length);
        string request = $"GET /a/../b HTTP/1.1\r\nHost: x\r\nX-Pad: {padding}\r\n\r\n";
        Assert.That(request, Has.Length.EqualTo(2048));
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Bytes(request)));
        var head = new HttpRequestHead();
        Assert.That(Http1Parser.TryParseRequestHead(ref reader, head, HttpLimits.Default), Is.True);
        Assert.That(head.Buffer.Length, Is.GreaterThan(2048), "moved to a larger buffer");
        Assert.Multiple(() =>
        {
            Assert.That(Text(head.Buffer, head.Path), Is.EqualTo("/b"));
            Assert.That(Text(head.Buffer, head.Host), Is.EqualTo("x"));
            Assert.That(Text(head.Buffer, head.Headers[1].Value), Is.EqualTo(padding));
        });
    }
}
