namespace Router.Net.Http1;

/// <summary>A byte range inside a head buffer.</summary>
internal readonly record struct HeadSegment(int Start, int Length)
{
    public bool IsEmpty => Length == 0;
}

/// <summary>One header field: name and value ranges inside the head buffer (value trimmed of OWS).</summary>
internal readonly record struct HeaderField(HeadSegment Name, HeadSegment Value);

internal enum HttpVersion : byte
{
    Unknown = 0,
    Http10,
    Http11,
}

internal enum HttpMethod : byte
{
    Custom = 0,
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Trace,
    Connect,
}

/// <summary>Tokens seen in the Connection header.</summary>
[Flags]
internal enum ConnectionOptions : byte
{
    None = 0,
    Close = 1,
    KeepAlive = 2,
    Upgrade = 4,

    /// <summary>The Connection header names other headers, which are hop-by-hop and must be removed.</summary>
    Other = 8,
}
