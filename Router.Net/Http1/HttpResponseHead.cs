namespace Router.Net.Http1;

/// <summary>A parsed upstream response head, reused per upstream connection. Same layout rules as <see cref="HttpRequestHead"/>.</summary>
internal sealed class HttpResponseHead
{
    public byte[] Buffer = [];
    public int Length;

    public HttpVersion Version;
    public int StatusCode;
    public HeadSegment Reason;

    public HeaderField[] Headers = new HeaderField[16];
    public int HeaderCount;

    /// <summary>Content-Length, or -1 when absent.</summary>
    public long ContentLength = -1;

    public bool Chunked;

    /// <summary>Transfer codings besides chunked (such as <c>gzip, chunked</c>): the data under the chunks is still coded.</summary>
    public bool TransferCoded;

    public ConnectionOptions Connection;

    /// <summary>It has a <c>Date</c> field.</summary>
    public bool HasDate;

    /// <summary>The <c>timeout</c> of a <c>Keep-Alive</c> field (seconds the upstream keeps an idle connection), or -1.</summary>
    public int KeepAliveTimeout = -1;

    /// <summary>The upstream may be reused after this response (given the body is fully read).</summary>
    public bool KeepAlive => Version == HttpVersion.Http11
        ? (Connection & ConnectionOptions.Close) == 0
        : (Connection & ConnectionOptions.KeepAlive) != 0 && (Connection & ConnectionOptions.Close) == 0;

    public ReadOnlySpan<byte> this[HeadSegment segment] => Buffer.AsSpan(segment.Start, segment.Length);

    public void Reset()
    {
        Length = 0;
        Version = HttpVersion.Unknown;
        StatusCode = 0;
        Reason = default;
        HeaderCount = 0;
        ContentLength = -1;
        Chunked = false;
        TransferCoded = false;
        Connection = ConnectionOptions.None;
        KeepAliveTimeout = -1;
        HasDate = false;
    }

    public void Release()
    {
        if (Buffer.Length > 0)
        {
            Transport.PooledBytes.Return(Buffer);
            Buffer = [];
        }

        Reset();
    }
}
