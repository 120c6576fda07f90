using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace Router.Net.Http1;

/// <summary>Why a message was rejected. Each reason maps to one status code and message (see <see cref="Http1Exception"/>).</summary>
internal enum RejectionReason
{
    // Request line / status line.
    InvalidRequestLine,
    RequestLineTooLong,
    InvalidMethod,
    InvalidRequestTarget,
    InvalidHttpVersion,
    HttpVersionNotSupported,
    InvalidStatusLine,

    // Header section.
    HeadersTooLarge,
    TooManyHeaders,
    InvalidHeader,
    InvalidHeaderName,
    InvalidHeaderValue,
    ObsoleteLineFolding,
    BareLineFeed,
    BareCarriageReturn,

    // Framing and meta headers.
    MissingHost,
    MultipleHost,
    InvalidHost,
    InvalidContentLength,
    ConflictingContentLength,
    ContentLengthWithTransferEncoding,
    ChunkedNotFinalEncoding,
    UnsupportedTransferEncoding,
    TransferEncodingInHttp10,

    // Chunked body.
    InvalidChunkSize,
    ChunkSizeLineTooLong,
    InvalidChunkExtension,
    MissingChunkDataTerminator,
    InvalidTrailer,
    TrailersTooLarge,
}

/// <summary>A malformed or over-limit HTTP/1.1 message. Thrown only on the rejection path.</summary>
internal sealed class Http1Exception : Exception
{
    /// <summary>Status for every rejection of an upstream response: the upstream, not the client, is at fault.</summary>
    public const int UpstreamStatusCode = 502;

    public Http1Exception(RejectionReason reason, int statusCode, string message)
        : base(message)
    {
        Reason = reason;
        StatusCode = statusCode;
    }

    public RejectionReason Reason { get; }

    /// <summary>Status to answer the client with (400, 414, 431, 501, 505, ...); 502 for upstream responses is the forwarder's choice.</summary>
    public int StatusCode { get; }

    /// <summary>Throws the rejection for a client request (status from <see cref="StatusCodeOf"/>).</summary>
    [DoesNotReturn]
    [StackTraceHidden]
    public static void Throw(RejectionReason reason) => throw Create(reason, upstream: false);

    /// <summary>Throws the rejection for an upstream message (<paramref name="upstream"/> true: status 502).</summary>
    [DoesNotReturn]
    [StackTraceHidden]
    public static void Throw(RejectionReason reason, bool upstream) => throw Create(reason, upstream);

    public static Http1Exception Create(RejectionReason reason, bool upstream) =>
        new(reason, upstream ? UpstreamStatusCode : StatusCodeOf(reason), MessageOf(reason));

    /// <summary>The one place that maps a reason to the status a client gets.</summary>
    public static int StatusCodeOf(RejectionReason reason) => reason switch
    {
        RejectionReason.RequestLineTooLong => 414,
        RejectionReason.HeadersTooLarge => 431,
        RejectionReason.TooManyHeaders => 431,
        RejectionReason.TrailersTooLarge => 431,
        RejectionReason.UnsupportedTransferEncoding => 501,
        RejectionReason.HttpVersionNotSupported => 505,
        RejectionReason.InvalidStatusLine => UpstreamStatusCode,
        _ => 400,
    };

    public static string MessageOf(RejectionReason reason) => reason switch
    {
        RejectionReason.InvalidRequestLine => "Malformed request line.",
        RejectionReason.RequestLineTooLong => "Request line too long.",
        RejectionReason.InvalidMethod => "Invalid character in method.",
        RejectionReason.InvalidRequestTarget => "Invalid request target.",
        RejectionReason.InvalidHttpVersion => "Malformed HTTP version.",
        RejectionReason.HttpVersionNotSupported => "HTTP version not supported.",
        RejectionReason.InvalidStatusLine => "Malformed status line.",
        RejectionReason.HeadersTooLarge => "Header section too large.",
        RejectionReason.TooManyHeaders => "Too many header fields.",
        RejectionReason.InvalidHeader => "Malformed header line.",
        RejectionReason.InvalidHeaderName => "Invalid header field name.",
        RejectionReason.InvalidHeaderValue => "Invalid character in header field value.",
        RejectionReason.ObsoleteLineFolding => "Obsolete line folding is not accepted.",
        RejectionReason.BareLineFeed => "Line feed without carriage return.",
        RejectionReason.BareCarriageReturn => "Carriage return without line feed.",
        RejectionReason.MissingHost => "Missing Host header.",
        RejectionReason.MultipleHost => "Multiple Host headers.",
        RejectionReason.InvalidHost => "Invalid Host.",
        RejectionReason.InvalidContentLength => "Invalid Content-Length.",
        RejectionReason.ConflictingContentLength => "Conflicting Content-Length values.",
        RejectionReason.ContentLengthWithTransferEncoding => "Content-Length together with Transfer-Encoding.",
        RejectionReason.ChunkedNotFinalEncoding => "Transfer-Encoding must end in chunked, once.",
        RejectionReason.UnsupportedTransferEncoding => "Unsupported transfer coding.",
        RejectionReason.TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 message.",
        RejectionReason.InvalidChunkSize => "Invalid chunk size.",
        RejectionReason.ChunkSizeLineTooLong => "Chunk size line too long.",
        RejectionReason.InvalidChunkExtension => "Invalid chunk extension.",
        RejectionReason.MissingChunkDataTerminator => "Chunk data not followed by CRLF.",
        RejectionReason.InvalidTrailer => "Malformed trailer field.",
        RejectionReason.TrailersTooLarge => "Trailer section too large.",
        _ => "Bad request.",
    };
}
