using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using Router.Net.Http1;

namespace Router.Benchmarks;

/// <summary>HTTP/1.1 head parsing and chunked framing validation. Allocated must read "-" for every parse.</summary>
[MemoryDiagnoser]
public class ParserBenchmarks
{
    private const string BrowserRequest =
        "GET /products/42?ref=home&lang=en HTTP/1.1\r\n" +
        "Host: shop.example.test\r\n" +
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
        "Accept-Language: en-US,en;q=0.5\r\n" +
        "Accept-Encoding: gzip, deflate, br, zstd\r\n" +
        "Referer: https://shop.example.test/\r\n" +
        "Connection: keep-alive\r\n" +
        "Cookie: session=4f9a1c2e8b7d; theme=dark; consent=yes\r\n" +
        "Upgrade-Insecure-Requests: 1\r\n" +
        "Sec-Fetch-Dest: document\r\n" +
        "Sec-Fetch-Mode: navigate\r\n" +
        "Priority: u=0, i\r\n" +
        "\r\n";

    private const string ApiRequest =
        "POST /api/v1/orders HTTP/1.1\r\n" +
        "Host: api.example.test\r\n" +
        "Content-Type: application/json\r\n" +
        "Content-Length: 42\r\n" +
        "\r\n";

    private const string Response =
        "HTTP/1.1 200 OK\r\n" +
        "Date: Sat, 28 Nov 2026 08:00:00 GMT\r\n" +
        "Server: upstream\r\n" +
        "Content-Type: text/html; charset=utf-8\r\n" +
        "Content-Length: 5120\r\n" +
        "Cache-Control: no-cache\r\n" +
        "Connection: keep-alive\r\n" +
        "\r\n";

    private readonly HttpRequestHead _request = new();
    private readonly HttpResponseHead _response = new();
    private ReadOnlySequence<byte> _browser;
    private ReadOnlySequence<byte> _browserSplit;
    private ReadOnlySequence<byte> _api;
    private ReadOnlySequence<byte> _responseHead;
    private ReadOnlySequence<byte> _chunked;

    [GlobalSetup]
    public void Setup()
    {
        var browser = Encoding.ASCII.GetBytes(BrowserRequest);
        _browser = new ReadOnlySequence<byte>(browser);
        _browserSplit = Segments.Split(browser, browser.Length / 3, 2 * browser.Length / 3);
        _api = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(ApiRequest));
        _responseHead = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(Response));

        // 4 chunks of 1 KiB (one with an extension), then a trailer: a 4 KiB streamed body.
        var body = new StringBuilder();
        for (var i = 0; i < 4; i++)
        {
            body.Append(i == 2 ? "400;name=value\r\n" : "400\r\n").Append('x', 1024).Append("\r\n");
        }

        body.Append("0\r\nX-Checksum: 1234\r\n\r\n");
        _chunked = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(body.ToString()));
    }

    /// <summary>The least any parser must do: find the end of the head.</summary>
    [Benchmark(Baseline = true)]
    public int FindHeadEnd_Browser() => _browser.FirstSpan.IndexOf("\r\n\r\n"u8);

    [Benchmark]
    public bool Request_Browser() => ParseRequest(_browser);

    [Benchmark]
    public bool Request_Api() => ParseRequest(_api);

    [Benchmark]
    public bool Request_Browser_3Segments() => ParseRequest(_browserSplit);

    [Benchmark]
    public bool Response_Head()
    {
        var reader = new SequenceReader<byte>(_responseHead);
        return Http1Parser.TryParseResponseHead(ref reader, _response, HttpLimits.Default);
    }

    [Benchmark]
    public long Chunked_Body4KiB()
    {
        var decoder = new ChunkedDecoder(HttpLimits.Default);
        decoder.Advance(_chunked, out var consumed);
        return consumed;
    }

    private bool ParseRequest(ReadOnlySequence<byte> input)
    {
        var reader = new SequenceReader<byte>(input);
        return Http1Parser.TryParseRequestHead(ref reader, _request, HttpLimits.Default);
    }

    private sealed class Segments : ReadOnlySequenceSegment<byte>
    {
        private Segments(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public static ReadOnlySequence<byte> Split(byte[] data, int cut1, int cut2)
        {
            var first = new Segments(data.AsMemory(0, cut1), 0);
            var second = new Segments(data.AsMemory(cut1, cut2 - cut1), cut1);
            var third = new Segments(data.AsMemory(cut2), cut2);
            first.Next = second;
            second.Next = third;
            return new ReadOnlySequence<byte>(first, 0, third, third.Memory.Length);
        }
    }
}
