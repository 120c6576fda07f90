using System.Buffers;
using NUnit.Framework;
using Router.Net.Http1;
using static Router.Tests.Net.Http1.TestInput;

namespace Router.Tests.Net.Http1;

public sealed class Http1RejectionTests
{
    private static readonly HttpLimits Small = new() { MaxRequestLineBytes = 32, MaxHeaderBytes = 64, MaxHeaderCount = 3 };

    [TestCase("GET\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidRequestLine), 400)]
    [TestCase("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidRequestLine), 400)]
    [TestCase("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidRequestLine), 400)]
    [TestCase(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidMethod), 400)]
    [TestCase("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidMethod), 400)]
    [TestCase("GET /a\u0001b HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidRequestTarget), 400)]
    [TestCase("GET /a\u007fb HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidRequestTarget), 400)]
    [TestCase("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidRequestTarget), 400)]
    [TestCase("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidRequestTarget), 400)]
    [TestCase("GET * HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidRequestTarget), 400)]
    [TestCase("GET a.test:80 HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidRequestTarget), 400)]
    [TestCase("GET ftp://a.test/ HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidRequestTarget), 400)]
    [TestCase("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidRequestTarget), 400)]
    [TestCase("GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidRequestTarget), 400)]
    [TestCase("GET /a\\b?c\\d HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidRequestTarget), 400)]
    [TestCase("GET /a?\\\u0001 HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidRequestTarget), 400)]
    [TestCase("GET http://a\\b/ HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("CONNECT a.test HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidRequestTarget), 400)]
    [TestCase("GET / HTTP/1.x\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidHttpVersion), 400)]
    [TestCase("GET / http/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidHttpVersion), 400)]
    [TestCase("GET / HTTP/1.10\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidHttpVersion), 400)]
    [TestCase("GET / HTTP/2.0\r\nHost: a\r\n\r\n", nameof(RejectionReason.HttpVersionNotSupported), 505)]
    [TestCase("GET / HTTP/0.9\r\nHost: a\r\n\r\n", nameof(RejectionReason.HttpVersionNotSupported), 505)]
    [TestCase("GET / HTTP/1.1\r\nNoColon\r\n\r\n", nameof(RejectionReason.InvalidHeader), 400)]
    [TestCase("GET / HTTP/1.1\r\n: empty-name\r\n\r\n", nameof(RejectionReason.InvalidHeaderName), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost : a\r\n\r\n", nameof(RejectionReason.InvalidHeaderName), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", nameof(RejectionReason.InvalidHeaderName), 400)]
    [TestCase("GET / HTTP/1.1\r\nX(y): a\r\n\r\n", nameof(RejectionReason.InvalidHeaderName), 400)]
    [TestCase("GET / HTTP/1.1\r\nX\u0000: a\r\n\r\n", nameof(RejectionReason.InvalidHeaderName), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a\r\nX: a\u0000b\r\n\r\n", nameof(RejectionReason.InvalidHeaderValue), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a\r\nX: a\u0001b\r\n\r\n", nameof(RejectionReason.InvalidHeaderValue), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a\r\nX: a\u007fb\r\n\r\n", nameof(RejectionReason.InvalidHeaderValue), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chu\"nked\r\n\r\n", nameof(RejectionReason.InvalidHeaderValue), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", nameof(RejectionReason.ObsoleteLineFolding), 400)]
    [TestCase("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", nameof(RejectionReason.ObsoleteLineFolding), 400)]
    [TestCase("GET / HTTP/1.1\nHost: a\r\n\r\n", nameof(RejectionReason.BareLineFeed), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a\n\r\n", nameof(RejectionReason.BareLineFeed), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a\r\n\n", nameof(RejectionReason.BareLineFeed), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", nameof(RejectionReason.BareCarriageReturn), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a\r\nX\rY: a\r\n\r\n", nameof(RejectionReason.BareCarriageReturn), 400)]
    [TestCase("GET / HTTP/1.1\r\nX: a\r\n\r\n", nameof(RejectionReason.MissingHost), 400)]
    [TestCase("GET http://a.test/ HTTP/1.1\r\n\r\n", nameof(RejectionReason.MissingHost), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", nameof(RejectionReason.MultipleHost), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: user@a.test\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("GET http://user@a.test/ HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a%2etest\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a.test:8x\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a.test:1:2\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: [::1]b\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: []\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: [::1%25eth0]\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: [v1.x]\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a[::1]\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a.b..\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("GET / HTTP/1.1\r\nHost: a.b..:80\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("GET http://a.test:80:81/ HTTP/1.1\r\nHost: a\r\n\r\n", nameof(RejectionReason.InvalidHost), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", nameof(RejectionReason.InvalidContentLength), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", nameof(RejectionReason.InvalidContentLength), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", nameof(RejectionReason.InvalidContentLength), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", nameof(RejectionReason.InvalidContentLength), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", nameof(RejectionReason.InvalidContentLength), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", nameof(RejectionReason.InvalidContentLength), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", nameof(RejectionReason.InvalidContentLength), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", nameof(RejectionReason.ConflictingContentLength), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", nameof(RejectionReason.ConflictingContentLength), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", nameof(RejectionReason.ContentLengthWithTransferEncoding), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", nameof(RejectionReason.ContentLengthWithTransferEncoding), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", nameof(RejectionReason.ChunkedNotFinalEncoding), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", nameof(RejectionReason.ChunkedNotFinalEncoding), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", nameof(RejectionReason.ChunkedNotFinalEncoding), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", nameof(RejectionReason.ChunkedNotFinalEncoding), 400)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo\r\n\r\n", nameof(RejectionReason.UnsupportedTransferEncoding), 501)]
    [TestCase("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", nameof(RejectionReason.UnsupportedTransferEncoding), 501)]
    [TestCase("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", nameof(RejectionReason.TransferEncodingInHttp10), 400)]
    public void MalformedRequest_IsRejectedWithItsReasonAndStatus(string text, string reason, int status)
    {
        var exception = Reject(text, HttpLimits.Default);
        Assert.Multiple(() =>
        {
            Assert.That(exception.Reason.ToString(), Is.EqualTo(reason));
            Assert.That(exception.StatusCode, Is.EqualTo(status));
            Assert.That(exception.Message, Is.Not.Empty);
        });
    }

    [TestCase("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n")]
    [TestCase("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    public void RequestLineOverTheLimit_IsRejectedWith414EvenBeforeItEnds(string text)
    {
        var exception = Reject(text, Small);
        Assert.That((exception.Reason, exception.StatusCode), Is.EqualTo((RejectionReason.RequestLineTooLong, 414)));
    }

    [Test]
    public void RequestLineAtTheLimit_IsAccepted()
    {
        var line = "GET /" + new string('a', 32 - "GET / HTTP/1.1".Length) + " HTTP/1.1";
        Assert.That(line, Has.Length.EqualTo(32));
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Bytes(line + "\r\nHost: a\r\n\r\n")));
        Assert.That(Http1Parser.TryParseRequestHead(ref reader, new HttpRequestHead(), Small), Is.True);
    }

    [TestCase("GET / HTTP/1.1\r\nHost: a\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n")]
    [TestCase("GET / HTTP/1.1\r\nHost: a\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    public void HeaderSectionOverTheLimit_IsRejectedWith431EvenBeforeItEnds(string text)
    {
        var exception = Reject(text, Small);
        Assert.That((exception.Reason, exception.StatusCode), Is.EqualTo((RejectionReason.HeadersTooLarge, 431)));
    }

    [Test]
    public void MoreHeaderLinesThanTheLimit_IsRejectedWith431()
    {
        var exception = Reject("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n", Small);
        Assert.That((exception.Reason, exception.StatusCode), Is.EqualTo((RejectionReason.TooManyHeaders, 431)));
    }

    [Test]
    public void RejectionsInTwoSegments_AreTheSameAsInOne()
    {
        var text = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        var bytes = Bytes(text);
        for (var cut = 0; cut <= bytes.Length; cut++)
        {
            var sequence = Split(bytes, cut);
            var exception = Assert.Throws<Http1Exception>(() =>
            {
                var reader = new SequenceReader<byte>(sequence);
                Http1Parser.TryParseRequestHead(ref reader, new HttpRequestHead(), HttpLimits.Default);
            });
            Assert.That(exception!.Reason, Is.EqualTo(RejectionReason.ConflictingContentLength), $"cut at {cut}");
        }
    }

    [Test]
    public void EveryReason_HasAStatusAndAMessage()
    {
        foreach (var reason in Enum.GetValues<RejectionReason>())
        {
            Assert.That(Http1Exception.StatusCodeOf(reason), Is.AnyOf(400, 414, 431, 501, 502, 505), reason.ToString());
            Assert.That(Http1Exception.MessageOf(reason), Is.Not.EqualTo("Bad request."), reason.ToString());
            Assert.That(Http1Exception.Create(reason, upstream: true).StatusCode, Is.EqualTo(502));
        }
    }

    private static Http1Exception Reject(string text, HttpLimits limits)
    {
        var bytes = Bytes(text);
        return Assert.Throws<Http1Exception>(() =>
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
            Http1Parser.TryParseRequestHead(ref reader, new HttpRequestHead(), limits);
        })!;
    }
}
