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

    /// <summary>
    /// Largest request body (chunked: the sum of the chunk sizes), or null for no limit. Over it: 413, before any upstream
    /// is contacted when Content-Length says so; for a chunked body as soon as the chunk sizes pass it (413 if the upstream
    /// has not answered yet, else the connection is cut). Default null, as YARP (which lifts Kestrel's 30 MB limit for
    /// proxied requests) and Envoy: the router streams bodies without buffering them, so size is the application's policy,
    /// and a proxy default such as nginx's client_max_body_size 1 MiB silently breaks uploads behind it.
    /// </summary>
    public long? MaxRequestBodyBytes { get; init; }

    /// <summary>
    /// Slowest average request-body rate a client may keep up, in bytes per second, or 0 for no minimum; measured over
    /// the time the router waits on the client (not while the upstream holds it back), after <see cref="MinRequestBodyDataRateGrace"/>.
    /// Under it: 408 if the upstream has not answered yet, else the connection is cut. 240 bytes/s with a 5 s grace, as
    /// Kestrel's MinRequestBodyDataRate: drip-feeding a body (slow POST) cannot hold a connection and an upstream slot.
    /// </summary>
    public double MinRequestBodyDataRate { get; init; } = 240;

    /// <summary>Time a request body may take before <see cref="MinRequestBodyDataRate"/> applies. 5 s, as Kestrel's grace period.</summary>
    public TimeSpan MinRequestBodyDataRateGrace { get; init; } = TimeSpan.FromSeconds(5);
}
