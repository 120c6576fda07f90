using Router.Net.Http1;

namespace Router.Net;

/// <summary>Request parsing and client connection limits of a <see cref="RouterServer"/>, with documented defaults.</summary>
public sealed record RouterLimits
{
    private readonly int _maxRequestLineBytes = HttpLimits.Default.MaxRequestLineBytes;
    private readonly int _maxHeaderBytes = HttpLimits.Default.MaxHeaderBytes;
    private readonly int _maxHeaderCount = HttpLimits.Default.MaxHeaderCount;
    private readonly TimeSpan _headerTimeout = HttpLimits.Default.HeaderTimeout;
    private readonly TimeSpan _keepAliveTimeout = HttpLimits.Default.KeepAliveTimeout;

    /// <summary>The defaults below.</summary>
    public static RouterLimits Default { get; } = new();

    /// <summary>Longest request line. 8 KiB, as nginx's large_client_header_buffers and Kestrel's MaxRequestLineSize. Over it: 414.</summary>
    public int MaxRequestLineBytes
    {
        get => _maxRequestLineBytes;
        init => _maxRequestLineBytes = Positive(value);
    }

    /// <summary>Largest header block (all header lines). 32 KiB, as Kestrel's MaxRequestHeadersTotalSize. Over it: 431.</summary>
    public int MaxHeaderBytes
    {
        get => _maxHeaderBytes;
        init => _maxHeaderBytes = Positive(value);
    }

    /// <summary>Most header fields. 100, as Kestrel's MaxRequestHeaderCount. Over it: 431.</summary>
    public int MaxHeaderCount
    {
        get => _maxHeaderCount;
        init => _maxHeaderCount = Positive(value);
    }

    /// <summary>Time to receive a whole request head once its first byte arrived. 30 s, as Kestrel's RequestHeadersTimeout. Over it: 408.</summary>
    public TimeSpan HeaderTimeout
    {
        get => _headerTimeout;
        init => _headerTimeout = Positive(value);
    }

    /// <summary>Idle time allowed between requests on a keep-alive connection. 75 s, as nginx's keepalive_timeout.</summary>
    public TimeSpan KeepAliveTimeout
    {
        get => _keepAliveTimeout;
        init => _keepAliveTimeout = Positive(value);
    }

    internal HttpLimits ToHttpLimits() => new()
    {
        MaxRequestLineBytes = MaxRequestLineBytes,
        MaxHeaderBytes = MaxHeaderBytes,
        MaxHeaderCount = MaxHeaderCount,
        HeaderTimeout = HeaderTimeout,
        KeepAliveTimeout = KeepAliveTimeout,
    };

    private static int Positive(int value)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
        return value;
    }

    private static TimeSpan Positive(TimeSpan value)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(value, TimeSpan.Zero);
        return value;
    }
}
