using System.Buffers;

namespace Router.Net.Http1;

/// <summary>HTTP/1.1 request and response head parser (RFC 9112). STUB: the Http1 helper implements it.</summary>
internal static class Http1Parser
{
    /// <summary>
    /// Parses a whole request head. Returns false (consuming nothing) when more input is needed.
    /// On success the reader is advanced past the blank line. Invalid input throws <see cref="Http1Exception"/>.
    /// </summary>
    public static bool TryParseRequestHead(ref SequenceReader<byte> reader, HttpRequestHead head, HttpLimits limits)
    {
        throw new NotImplementedException();
    }

    /// <summary>Parses a whole response head; same contract as <see cref="TryParseRequestHead"/>.</summary>
    public static bool TryParseResponseHead(ref SequenceReader<byte> reader, HttpResponseHead head, HttpLimits limits)
    {
        throw new NotImplementedException();
    }
}
