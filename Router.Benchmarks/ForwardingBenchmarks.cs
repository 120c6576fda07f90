using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using Router.Net.Forwarding;
using Router.Net.Http1;
using Router.Net.Observability;

namespace Router.Benchmarks;

/// <summary>
/// Head rewrite (what the forwarder writes upstream and back to the client) and the access log's per-request cost.
/// Allocated must read "-".
/// </summary>
[MemoryDiagnoser]
public class ForwardingBenchmarks
{
    private const string BrowserRequest =
        "GET /products/42?ref=home&lang=en HTTP/1.1\r\n" +
        "Host: shop.example.test\r\n" +
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
        "Accept-Language: en-US,en;q=0.5\r\n" +
        "Accept-Encoding: gzip, deflate, br, zstd\r\n" +
        "Connection: keep-alive\r\n" +
        "Cookie: session=4f9a1c2e8b7d; theme=dark; consent=yes\r\n" +
        "X-Forwarded-For: 10.1.2.3\r\n" +
        "\r\n";

    private const string Response =
        "HTTP/1.1 200 OK\r\n" +
        "Date: Sat, 28 Nov 2026 08:00:00 GMT\r\n" +
        "Content-Type: text/html; charset=utf-8\r\n" +
        "Content-Length: 5120\r\n" +
        "Keep-Alive: timeout=5\r\n" +
        "Connection: keep-alive\r\n" +
        "\r\n";

    private static readonly byte[] s_client = "192.0.2.10"u8.ToArray();

    private readonly HttpRequestHead _request = new();
    private readonly HttpResponseHead _response = new();
    private readonly Pipe _pipe = new(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
    private AccessLog _log = null!;

    [GlobalSetup]
    public void Setup()
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(BrowserRequest)));
        Http1Parser.TryParseRequestHead(ref reader, _request, HttpLimits.Default);
        var responseReader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(Response)));
        Http1Parser.TryParseResponseHead(ref responseReader, _response, HttpLimits.Default);
        _log = new AccessLog(Stream.Null, NullLogger.Instance, capacity: 65536);
    }

    [GlobalCleanup]
    public void Cleanup() => _log.DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Baseline: copying the head bytes unchanged.</summary>
    [Benchmark(Baseline = true)]
    public void CopyHeadVerbatim()
    {
        _pipe.Writer.Write(_request.Buffer.AsSpan(0, _request.Length));
        Drain();
    }

    [Benchmark]
    public void RewriteRequestHead()
    {
        HeadWriter.WriteRequest(_pipe.Writer, _request, s_client, https: false, tunnel: false);
        Drain();
    }

    [Benchmark]
    public void RewriteResponseHead()
    {
        HeadWriter.WriteResponse(_pipe.Writer, _response, closeClient: false, clientHttp10: false, tunnel: false);
        Drain();
    }

    [Benchmark]
    public void AccessLogRecord() =>
        _log.Record(s_client, "GET"u8, "shop.example.test"u8, "/products/42?ref=home"u8, "web", "shop", "127.0.0.1:9000", 200, 5120, 1000, 800, "success");

    private void Drain()
    {
        // Unbounded pipe (pauseWriterThreshold 0): the flush always completes synchronously.
#pragma warning disable CA2012
        _pipe.Writer.FlushAsync().GetAwaiter().GetResult();
#pragma warning restore CA2012
        _pipe.Reader.TryRead(out var result);
        _pipe.Reader.AdvanceTo(result.Buffer.End);
    }
}
