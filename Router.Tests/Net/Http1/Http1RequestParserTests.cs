using System.Buffers;
using NUnit.Framework;
using Router.Net.Http1;
using static Router.Tests.Net.Http1.TestInput;
using HttpMethod = Router.Net.Http1.HttpMethod;

namespace Router.Tests.Net.Http1;

public sealed class Http1RequestParserTests
{
    private const string BrowserHead =
        "GET /products/42?ref=home&lang=en HTTP/1.1\r\n" +
        "Host: shop.example.test\r\n" +
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
        "Accept-Language: en-US,en;q=0.5\r\n" +
        "Accept-Encoding: gzip, deflate, br, zstd\r\n" +
        "Referer: https://shop.example.test/\r\n" +
        "Connection: keep-alive\r\n" +
        "Cookie: session=4f9a1c2e; theme=dark\r\n" +
        "Upgrade-Insecure-Requests: 1\r\n" +
        "Sec-Fetch-Dest: document\r\n" +
        "Sec-Fetch-Mode: navigate\r\n" +
        "Sec-Fetch-Site: same-origin\r\n" +
        "Sec-Fetch-User: ?1\r\n" +
        "Priority: u=0, i\r\n" +
        "DNT: 1\r\n" +
        "X-Request-Id: 7d3f\r\n" +
        "X-Forwarded-For: 192.0.2.1\r\n" +
        "X-Trace:\tspan=1 \t\r\n" +
        "\r\n";

    private static readonly Dictionary<string, string> Valid = new()
    {
        ["simple GET"] = "GET /index.html?x=1 HTTP/1.1\r\nHost: example.test\r\n\r\n",
        ["POST with Content-Length"] = "POST /api/items HTTP/1.1\r\nHost: api.example.test\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n",
        ["chunked POST"] = "POST /upload HTTP/1.1\r\nHost: up.example.test\r\nTransfer-Encoding: gzip, chunked\r\nExpect: 100-continue\r\n\r\n",
        ["many headers"] = BrowserHead,
        ["absolute-form"] = "GET http://Example.Test:8080/a/b?c=d HTTP/1.1\r\nHost: other.test\r\nConnection: Upgrade, X-Custom\r\nUpgrade: websocket\r\n\r\n",
        ["HTTP/1.0 keep-alive"] = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    };

    private static IEnumerable<string> ValidNames => Valid.Keys;

    [TestCaseSource(nameof(ValidNames))]
    public void EveryPrefix_OfAValidHead_AsksForMoreAndConsumesNothing(string name)
    {
        var bytes = Bytes(Valid[name]);
        var head = new HttpRequestHead();
        for (var length = 0; length < bytes.Length; length++)
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes, 0, length));
            Assert.That(Http1Parser.TryParseRequestHead(ref reader, head, HttpLimits.Default), Is.False, $"prefix {length}");
            Assert.That(reader.Consumed, Is.Zero, $"prefix {length}");
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

    [TestCaseSource(nameof(ValidNames))]
    public void EveryPrefix_SplitInTwoSegments_AsksForMore(string name)
    {
        var bytes = Bytes(Valid[name]);
        var head = new HttpRequestHead();
        for (var length = 1; length < bytes.Length; length += 3)
        {
            var reader = new SequenceReader<byte>(Split(bytes[..length], length / 2));
            Assert.That(Http1Parser.TryParseRequestHead(ref reader, head, HttpLimits.Default), Is.False, $"prefix {length}");
            Assert.That(reader.Consumed, Is.Zero);
        }
    }

    [Test]
    public void SimpleGet_ExposesMethodTargetPathQueryAndHost()
    {
        var head = ParseHead(Valid["simple GET"]);
        Assert.Multiple(() =>
        {
            Assert.That(head.Method, Is.EqualTo(HttpMethod.Get));
            Assert.That(Text(head.Buffer, head.MethodToken), Is.EqualTo("GET"));
            Assert.That(Text(head.Buffer, head.Target), Is.EqualTo("/index.html?x=1"));
            Assert.That(Text(head.Buffer, head.Path), Is.EqualTo("/index.html"));
            Assert.That(Text(head.Buffer, head.Query), Is.EqualTo("?x=1"));
            Assert.That(Text(head.Buffer, head.Host), Is.EqualTo("example.test"));
            Assert.That(head.Version, Is.EqualTo(HttpVersion.Http11));
            Assert.That(head.ContentLength, Is.EqualTo(-1));
            Assert.That(head.HasBody, Is.False);
            Assert.That(head.KeepAlive, Is.True);
            Assert.That(head.HeaderCount, Is.EqualTo(1));
        });
    }

    [Test]
    public void PostWithContentLength_HasABodyOfThatLength()
    {
        var head = ParseHead(Valid["POST with Content-Length"]);
        Assert.Multiple(() =>
        {
            Assert.That(head.Method, Is.EqualTo(HttpMethod.Post));
            Assert.That(head.ContentLength, Is.EqualTo(13));
            Assert.That(head.Chunked, Is.False);
            Assert.That(head.HasBody, Is.True);
        });
    }

    [Test]
    public void ChunkedPost_IsChunkedAndExpectsContinue()
    {
        var head = ParseHead(Valid["chunked POST"]);
        Assert.Multiple(() =>
        {
            Assert.That(head.Chunked, Is.True);
            Assert.That(head.ContentLength, Is.EqualTo(-1));
            Assert.That(head.ExpectContinue, Is.True);
        });
    }

    [Test]
    public void ManyHeaders_AreAllKeptInOrderWithValuesTrimmed()
    {
        var head = ParseHead(BrowserHead);
        Assert.Multiple(() =>
        {
            Assert.That(head.HeaderCount, Is.EqualTo(18));
            Assert.That(Text(head.Buffer, head.Headers[0].Name), Is.EqualTo("Host"));
            Assert.That(Text(head.Buffer, head.Headers[17].Name), Is.EqualTo("X-Trace"));
            Assert.That(Text(head.Buffer, head.Headers[17].Value), Is.EqualTo("span=1"));
            Assert.That(Text(head.Buffer, head.Headers[12].Value), Is.EqualTo("?1"));
            Assert.That(head.Connection, Is.EqualTo(ConnectionOptions.KeepAlive));
        });
    }

    [Test]
    public void AbsoluteForm_AuthorityWinsOverHostHeader()
    {
        var head = ParseHead(Valid["absolute-form"]);
        Assert.Multiple(() =>
        {
            Assert.That(Text(head.Buffer, head.Host), Is.EqualTo("Example.Test:8080"));
            Assert.That(Text(head.Buffer, head.Path), Is.EqualTo("/a/b"));
            Assert.That(Text(head.Buffer, head.Query), Is.EqualTo("?c=d"));
            Assert.That(head.Connection, Is.EqualTo(ConnectionOptions.Upgrade | ConnectionOptions.Other));
            Assert.That(head.HasUpgrade, Is.True);
        });
    }

    [Test]
    public void AbsoluteForm_WithoutPath_HasPathSlash()
    {
        var head = ParseHead("GET https://a.test?q HTTP/1.1\r\nHost: a.test\r\n\r\n");
        Assert.Multiple(() =>
        {
            Assert.That(Text(head.Buffer, head.Host), Is.EqualTo("a.test"));
            Assert.That(Text(head.Buffer, head.Path), Is.EqualTo("/"));
            Assert.That(Text(head.Buffer, head.Query), Is.EqualTo("?q"));
        });
    }

    [Test]
    public void Http10KeepAlive_KeepsTheConnectionWithoutHost()
    {
        var head = ParseHead(Valid["HTTP/1.0 keep-alive"]);
        Assert.Multiple(() =>
        {
            Assert.That(head.Version, Is.EqualTo(HttpVersion.Http10));
            Assert.That(head.KeepAlive, Is.True);
            Assert.That(head.Host.IsEmpty, Is.True);
        });
    }

    [Test]
    public void Http11ConnectionClose_DoesNotKeepAlive() =>
        Assert.That(ParseHead("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").KeepAlive, Is.False);

    [Test]
    public void Connect_UsesAuthorityFormAsHost()
    {
        var head = ParseHead("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n");
        Assert.Multiple(() =>
        {
            Assert.That(head.Method, Is.EqualTo(HttpMethod.Connect));
            Assert.That(Text(head.Buffer, head.Host), Is.EqualTo("[::1]:443"));
            Assert.That(head.Path.IsEmpty, Is.True);
        });
    }

    [Test]
    public void OptionsAsterisk_IsAccepted()
    {
        var head = ParseHead("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.That(Text(head.Buffer, head.Path), Is.EqualTo("*"));
    }

    [Test]
    public void CustomMethod_KeepsItsToken()
    {
        var head = ParseHead("PROPFIND /dav HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Multiple(() =>
        {
            Assert.That(head.Method, Is.EqualTo(HttpMethod.Custom));
            Assert.That(Text(head.Buffer, head.MethodToken), Is.EqualTo("PROPFIND"));
        });
    }

    [TestCase("GET", nameof(HttpMethod.Get))]
    [TestCase("HEAD", nameof(HttpMethod.Head))]
    [TestCase("POST", nameof(HttpMethod.Post))]
    [TestCase("PUT", nameof(HttpMethod.Put))]
    [TestCase("DELETE", nameof(HttpMethod.Delete))]
    [TestCase("OPTIONS", nameof(HttpMethod.Options))]
    [TestCase("PATCH", nameof(HttpMethod.Patch))]
    [TestCase("TRACE", nameof(HttpMethod.Trace))]
    [TestCase("get", nameof(HttpMethod.Custom))]
    public void KnownMethods_AreRecognisedCaseSensitively(string method, string expected) =>
        Assert.That(ParseHead($"{method} / HTTP/1.1\r\nHost: a\r\n\r\n").Method.ToString(), Is.EqualTo(expected));

    [TestCase("X-A: 1\r\n", false)]
    [TestCase("X_A: 1\r\n", true)]
    [TestCase("X-A: 1\r\nX-B_: 2\r\n", true)]
    [TestCase("X-A: a_b\r\n", false)]
    public void UnderscoreInAFieldName_IsNoted_NotInAValue(string fields, bool noted) =>
        Assert.That(ParseHead($"GET / HTTP/1.1\r\nHost: a\r\n{fields}\r\n").UnderscoreInNames, Is.EqualTo(noted));

    [Test]
    public void UnderscoreNote_IsClearedForTheNextHead()
    {
        var head = new HttpRequestHead();
        foreach (var text in new[] { "GET / HTTP/1.1\r\nHost: a\r\nX_A: 1\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\n\r\n" })
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Bytes(text)));
            Assert.That(Http1Parser.TryParseRequestHead(ref reader, head, HttpLimits.Default), Is.True);
        }

        Assert.That(head.UnderscoreInNames, Is.False);
    }

    [TestCase("Content-Length: 5, 5\r\n")]
    [TestCase("Content-Length: 5\r\ncontent-length: 5\r\n")]
    public void IdenticalContentLengths_CountAsOne(string fields) =>
        Assert.That(ParseHead($"POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\n").ContentLength, Is.EqualTo(5));

    [TestCase("a.test")]
    [TestCase("A-1.b_c~d.test.")]
    [TestCase("a.test:8080")]
    [TestCase("a.test:")]
    [TestCase("192.0.2.1:80")]
    [TestCase("[2001:db8::1]")]
    [TestCase("[::ffff:192.0.2.1]:443")]
    [TestCase(":80")]
    [TestCase("a..b")]
    public void ValidHosts_AreAccepted(string host)
    {
        var head = ParseHead($"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        Assert.That(Text(head.Buffer, head.Host), Is.EqualTo(host));
    }

    [Test]
    public void EmptyHost_IsAccepted() =>
        Assert.That(ParseHead("GET / HTTP/1.1\r\nHost:\r\n\r\n").Host.IsEmpty, Is.True);

    [Test]
    public void HeaderNames_AreMatchedCaseInsensitively()
    {
        var head = ParseHead("POST / HTTP/1.1\r\nhOST: a\r\ntransfer-ENCODING: Chunked\r\nCONNECTION: CLOSE\r\n\r\n");
        Assert.Multiple(() =>
        {
            Assert.That(head.Host.IsEmpty, Is.False);
            Assert.That(head.Chunked, Is.True);
            Assert.That(head.Connection, Is.EqualTo(ConnectionOptions.Close));
        });
    }

    [Test]
    public void OneEmptyLineBeforeTheRequestLine_IsIgnored()
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Bytes("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")));
        var head = new HttpRequestHead();
        Assert.That(Http1Parser.TryParseRequestHead(ref reader, head, HttpLimits.Default), Is.True);
        Assert.That(reader.End, Is.True);
        Assert.That(Text(head.Buffer, head.MethodToken), Is.EqualTo("GET"));
    }

    [Test]
    public void PipelinedRequests_ParseOneAfterTheOther()
    {
        var first = Valid["POST with Content-Length"];
        var body = "{\"a\":\"hello\"}";
        var second = Valid["simple GET"];
        var reader = new SequenceReader<byte>(Split(Bytes(first + body + second), 40));
        var head = new HttpRequestHead();

        Assert.That(Http1Parser.TryParseRequestHead(ref reader, head, HttpLimits.Default), Is.True);
        Assert.That(head.Method, Is.EqualTo(HttpMethod.Post));
        Assert.That(reader.Consumed, Is.EqualTo(first.Length));

        reader.Advance(head.ContentLength);
        Assert.That(Http1Parser.TryParseRequestHead(ref reader, head, HttpLimits.Default), Is.True);
        Assert.That(reader.End, Is.True);
        Assert.Multiple(() =>
        {
            Assert.That(head.Method, Is.EqualTo(HttpMethod.Get));
            Assert.That(head.ContentLength, Is.EqualTo(-1));
            Assert.That(Text(head.Buffer, head.Path), Is.EqualTo("/index.html"));
        });
    }

    [Test]
    public void BodyBytesAfterTheHead_AreNotConsumed()
    {
        var text = Valid["POST with Content-Length"];
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Bytes(text + "{\"a\":\"hello\"}")));
        Assert.That(Http1Parser.TryParseRequestHead(ref reader, new HttpRequestHead(), HttpLimits.Default), Is.True);
        Assert.That(reader.Consumed, Is.EqualTo(text.Length));
    }

    [Test]
    public void SteadyStateParsing_AllocatesNothing()
    {
        var sequence = Split(Bytes(BrowserHead), 100, 300);
        var head = new HttpRequestHead();
        for (var i = 0; i < 10; i++)
        {
            ParseOnce(sequence, head);
        }

        // The runtime may allocate once on this thread while it tiers the code up: require one clean run of several.
        long least = long.MaxValue;
        for (var run = 0; run < 4; run++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < 100; i++)
            {
                ParseOnce(sequence, head);
            }

            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        Assert.That(least, Is.Zero);

        static void ParseOnce(ReadOnlySequence<byte> sequence, HttpRequestHead head)
        {
            var reader = new SequenceReader<byte>(sequence);
            Http1Parser.TryParseRequestHead(ref reader, head, HttpLimits.Default);
        }
    }

    [Test]
    public void Release_ReturnsTheBufferAndAHeadCanBeParsedAgain()
    {
        var head = ParseHead(Valid["simple GET"]);
        head.Release();
        Assert.That(head.Buffer, Is.Empty);
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Bytes(Valid["simple GET"])));
        Assert.That(Http1Parser.TryParseRequestHead(ref reader, head, HttpLimits.Default), Is.True);
    }

    private static HttpRequestHead ParseHead(string text)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Bytes(text)));
        var head = new HttpRequestHead();
        Assert.That(Http1Parser.TryParseRequestHead(ref reader, head, HttpLimits.Default), Is.True);
        Assert.That(reader.Consumed, Is.EqualTo(text.Length));
        return head;
    }

    private static string Parse(ReadOnlySequence<byte> input)
    {
        var reader = new SequenceReader<byte>(input);
        var head = new HttpRequestHead();
        Assert.That(Http1Parser.TryParseRequestHead(ref reader, head, HttpLimits.Default), Is.True);
        return Describe(head) + $"\nconsumed={reader.Consumed}";
    }
}
