namespace Router.Net.Http1;

/// <summary>
/// A parsed request head, reused per connection. The parser copies the head bytes (request line through
/// the blank line) into <see cref="Buffer"/> so every field is a contiguous span whatever the segmentation.
/// </summary>
internal sealed class HttpRequestHead
{
    /// <summary>Head bytes; rented from PooledBytes by the parser, returned by <see cref="Release"/>.</summary>
    public byte[] Buffer = [];

    /// <summary>Bytes of <see cref="Buffer"/> in use (the whole head, including the final CRLFCRLF).</summary>
    public int Length;

    public HttpMethod Method;
    public HeadSegment MethodToken;
    public HeadSegment Target;

    /// <summary>Path part of the target (origin-form), or of the absolute-form URI.</summary>
    public HeadSegment Path;

    /// <summary>Query including the leading '?', or empty.</summary>
    public HeadSegment Query;

    public HttpVersion Version;

    /// <summary>Header slots; rented by the parser when the first header arrives, returned by <see cref="Release"/>.</summary>
    public HeaderField[] Headers = [];
    public int HeaderCount;

    /// <summary>Host header value, or the authority of an absolute-form target (which wins).</summary>
    public HeadSegment Host;

    /// <summary>Content-Length, or -1 when absent.</summary>
    public long ContentLength = -1;

    /// <summary>Transfer-Encoding ends in chunked.</summary>
    public bool Chunked;

    public ConnectionOptions Connection;

    /// <summary>An Upgrade header is present (with Connection: upgrade this asks for a tunnel).</summary>
    public bool HasUpgrade;

    /// <summary>Expect: 100-continue.</summary>
    public bool ExpectContinue;

    /// <summary>A field name has an underscore (such fields are not forwarded).</summary>
    public bool UnderscoreInNames;

    /// <summary>The connection may carry another request after this one.</summary>
    public bool KeepAlive => Version == HttpVersion.Http11
        ? (Connection & ConnectionOptions.Close) == 0
        : (Connection & ConnectionOptions.KeepAlive) != 0 && (Connection & ConnectionOptions.Close) == 0;

    /// <summary>A body follows the head.</summary>
    public bool HasBody => Chunked || ContentLength > 0;

    public ReadOnlySpan<byte> this[HeadSegment segment] => Buffer.AsSpan(segment.Start, segment.Length);

    /// <summary>Clears per-request fields; keeps the buffers.</summary>
    public void Reset()
    {
        Length = 0;
        Method = HttpMethod.Custom;
        MethodToken = Target = Path = Query = Host = default;
        Version = HttpVersion.Unknown;
        HeaderCount = 0;
        ContentLength = -1;
        Chunked = false;
        Connection = ConnectionOptions.None;
        HasUpgrade = false;
        ExpectContinue = false;
        UnderscoreInNames = false;
    }

    /// <summary>Returns the rented buffers so an idle connection holds none.</summary>
    public void Release()
    {
        if (Buffer.Length > 0)
        {
            Transport.PooledBytes.Return(Buffer);
            Buffer = [];
        }

        if (Headers.Length > 0)
        {
            HeaderSlots.Return(Headers);
            Headers = [];
        }

        Reset();
    }
}
