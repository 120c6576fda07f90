namespace Router.Net.Http1;

/// <summary>Why a message was rejected. Each reason maps to one status code and message (see <see cref="Http1Exception"/>).</summary>
internal enum RejectionReason
{
    InvalidRequestLine,
    RequestLineTooLong,
    HeadersTooLarge,
    InvalidHeader,
    // STUB: the Http1 helper completes this list.
}

/// <summary>A malformed or over-limit HTTP/1.1 message. Thrown only on the rejection path.</summary>
internal sealed class Http1Exception : Exception
{
    public Http1Exception(RejectionReason reason, int statusCode, string message)
        : base(message)
    {
        Reason = reason;
        StatusCode = statusCode;
    }

    public RejectionReason Reason { get; }

    /// <summary>Status to answer the client with (400, 414, 431, 501, 505, ...); 502 for upstream responses is the forwarder's choice.</summary>
    public int StatusCode { get; }
}
