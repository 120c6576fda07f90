namespace Router.Net.Http1;

/// <summary>Parser and connection limits, with documented defaults.</summary>
internal sealed class HttpLimits
{
    public static readonly HttpLimits Default = new();

    /// <summary>Longest request line. 8 KiB, as nginx's large_client_header_buffers and Kestrel's MaxRequestLineSize. Over it: 414.</summary>
    public int MaxRequestLineBytes { get; init; } = 8 * 1024;

    /// <summary>Largest header block (all header lines). 32 KiB, as Kestrel's MaxRequestHeadersTotalSize. Over it: 431.</summary>
    public int MaxHeaderBytes { get; init; } = 32 * 1024;

    /// <summary>Most header fields. 100, as Kestrel's MaxRequestHeaderCount. Over it: 431.</summary>
    public int MaxHeaderCount { get; init; } = 100;

    /// <summary>Time to receive a whole request head once its first byte arrived. 30 s, as Kestrel's RequestHeadersTimeout. Over it: 408.</summary>
    public TimeSpan HeaderTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Idle time allowed between requests on a keep-alive connection. 75 s, as nginx's keepalive_timeout.</summary>
    public TimeSpan KeepAliveTimeout { get; init; } = TimeSpan.FromSeconds(75);
}
