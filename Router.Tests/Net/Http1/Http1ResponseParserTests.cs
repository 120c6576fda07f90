using System.Buffers;
using NUnit.Framework;
using Router.Net.Http1;
using static Router.Tests.Net.Http1.TestInput;

namespace Router.Tests.Net.Http1;

public sealed class Http1ResponseParserTests
{
    private static readonly Dictionary<string, string> Valid = new()
    {
        ["200 with Content-Length"] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n",
        ["404 chunked"] = "HTTP/1.1 404 Not Found\r\nServer: upstream\r\nTransfer-Encoding: chunked\r\nDate: Sat, 28 Nov 2026 08:00:00 GMT\r\n\r\n",
        ["HTTP/1.0 204 without reason"] = "HTTP/1.0 204\r\nConnection: close\r\n\r\n",
    };

    private static IEnumerable<string> ValidNames => Valid.Keys;

    [TestCaseSource(nameof(ValidNames))]
    public void EveryPrefix_OfAValidHead_AsksForMoreAndConsumesNothing(string name)
    {
        var bytes = Bytes(Valid[name]);
        var head = new HttpResponseHead();
        for (var length = 0; length < bytes.Length; length++)
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes, 0, length));
            Assert.That(Http1Parser.TryParseResponseHead(ref reader, head, HttpLimits.Default), Is.False, $"prefix {length}");
            Assert.That(reader.Consumed, Is.Zero);
        }
    }

    [TestCaseSource(nameof(ValidNames))]
    public void EveryTwoSegmentSplit_ParsesLikeOneSegment(string name)
    {
        var bytes = Bytes(Valid[name]);
        var expected = Parse(new ReadOnlySequence<byte>(bytes));
        for (var cut = 0; cut <= bytes.Length; cut++)
        {
            Assert.That(Parse(Split(bytes, cut)), Is.EqualTo(expected), $"cut at {cut}");
        }
    }

    [Test]
    public void StatusLine_GivesVersionCodeAndReason()
    {
        var head = ParseHead(Valid["404 chunked"]);
        Assert.Multiple(() =>
        {
            Assert.That(head.Version, Is.EqualTo(HttpVersion.Http11));
            Assert.That(head.StatusCode, Is.EqualTo(404));
            Assert.That(Text(head.Buffer, head.Reason), Is.EqualTo("Not Found"));
            Assert.That(head.Chunked, Is.True);
            Assert.That(head.KeepAlive, Is.True);
            Assert.That(head.HeaderCount, Is.EqualTo(3));
        });
    }

    [Test]
    public void ContentLengthAndConnection_AreRead()
    {
        var head = ParseHead(Valid["200 with Content-Length"]);
        Assert.Multiple(() =>
        {
            Assert.That(head.StatusCode, Is.EqualTo(200));
            Assert.That(head.ContentLength, Is.EqualTo(5));
            Assert.That(head.Connection, Is.EqualTo(ConnectionOptions.KeepAlive));
        });
    }

    [TestCase("", -1)]
    [TestCase("Keep-Alive: timeout=5, max=100\r\n", 5)]
    [TestCase("keep-alive: MAX=3 ,TIMEOUT = 7\r\n", 7)]
    [TestCase("Keep-Alive: timeout=30\r\nKeep-Alive: timeout=2\r\n", 2)]
    [TestCase("Keep-Alive: timeout=99999999999\r\n", 86_400)]
    [TestCase("Keep-Alive: timeout=5s, max=100\r\n", -1)]
    [TestCase("Keep-Alive: timeout=\r\n", -1)]
    [TestCase("Keep-Alive: max=100\r\n", -1)]
    public void KeepAliveTimeout_IsTheSmallestTimeoutParameter_MalformedOnesIgnored(string field, int seconds)
    {
        var head = ParseHead("HTTP/1.1 200 OK\r\n" + field + "Content-Length: 0\r\n\r\n");
        Assert.That(head.KeepAliveTimeout, Is.EqualTo(seconds));
    }

    [Test]
    public void DateField_IsNoticed()
    {
        Assert.That(ParseHead(Valid["404 chunked"]).HasDate, Is.True);
        Assert.That(ParseHead(Valid["200 with Content-Length"]).HasDate, Is.False);
        Assert.That(ParseHead("HTTP/1.1 200 OK\r\nDATE: Sat, 28 Nov 2026 08:00:00 GMT\r\n\r\n").HasDate, Is.True);
    }

    [Test]
    public void Http10WithoutReason_IsAcceptedAndNotKeptAlive()
    {
        var head = ParseHead(Valid["HTTP/1.0 204 without reason"]);
        Assert.Multiple(() =>
        {
            Assert.That(head.StatusCode, Is.EqualTo(204));
            Assert.That(head.Reason.IsEmpty, Is.True);
            Assert.That(head.KeepAlive, Is.False);
        });
    }

    [TestCase("HTTP/1.1 20 OK\r\n\r\n", nameof(RejectionReason.InvalidStatusLine))]
    [TestCase("HTTP/1.1 099 Low\r\n\r\n", nameof(RejectionReason.InvalidStatusLine))]
    [TestCase("HTTP/1.1 2000 OK\r\n\r\n", nameof(RejectionReason.InvalidStatusLine))]
    [TestCase("HTTP/1.1 200 O\u0001K\r\n\r\n", nameof(RejectionReason.InvalidStatusLine))]
    [TestCase("HTTP/1.1  200 OK\r\n\r\n", nameof(RejectionReason.InvalidStatusLine))]
    [TestCase("\r\nHTTP/1.1 200 OK\r\n\r\n", nameof(RejectionReason.InvalidStatusLine))]
    [TestCase("HTTP/2.0 200 OK\r\n\r\n", nameof(RejectionReason.HttpVersionNotSupported))]
    [TestCase("HTTQ/1.1 200 OK\r\n\r\n", nameof(RejectionReason.InvalidHttpVersion))]
    [TestCase("HTTP/1.1 200 OK\nServer: x\r\n\r\n", nameof(RejectionReason.BareLineFeed))]
    [TestCase("HTTP/1.1 200 OK\r\nServer: x\r\n y\r\n\r\n", nameof(RejectionReason.ObsoleteLineFolding))]
    [TestCase("HTTP/1.1 200 OK\r\nServer : x\r\n\r\n", nameof(RejectionReason.InvalidHeaderName))]
    [TestCase("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", nameof(RejectionReason.ContentLengthWithTransferEncoding))]
    [TestCase("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n", nameof(RejectionReason.ConflictingContentLength))]
    [TestCase("HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n", nameof(RejectionReason.InvalidContentLength))]
    [TestCase("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", nameof(RejectionReason.ChunkedNotFinalEncoding))]
    [TestCase("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", nameof(RejectionReason.TransferEncodingInHttp10))]
    public void MalformedResponse_IsRejectedWith502(string text, string reason)
    {
        var bytes = Bytes(text);
        var exception = Assert.Throws<Http1Exception>(() =>
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
            Http1Parser.TryParseResponseHead(ref reader, new HttpResponseHead(), HttpLimits.Default);
        })!;
        Assert.That((exception.Reason, exception.StatusCode), Is.EqualTo((Enum.Parse<RejectionReason>(reason), 502)));
    }

    [Test]
    public void ResponseHost_IsNotRequired()
    {
        var head = ParseHead("HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\n\r\n");
        Assert.That(head.HeaderCount, Is.EqualTo(2));
    }

    private static HttpResponseHead ParseHead(string text)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Bytes(text + "hello")));
        var head = new HttpResponseHead();
        Assert.That(Http1Parser.TryParseResponseHead(ref reader, head, HttpLimits.Default), Is.True);
        Assert.That(reader.Consumed, Is.EqualTo(text.Length));
        return head;
    }

    private static string Parse(ReadOnlySequence<byte> input)
    {
        var reader = new SequenceReader<byte>(input);
        var head = new HttpResponseHead();
        Assert.That(Http1Parser.TryParseResponseHead(ref reader, head, HttpLimits.Default), Is.True);
        return Describe(head) + $"\nconsumed={reader.Consumed}";
    }
}
