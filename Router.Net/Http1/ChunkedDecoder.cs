using System.Buffers;

namespace Router.Net.Http1;

/// <summary>
/// Validates chunked framing (RFC 9112 §7.1) of a body that is forwarded verbatim. It does not strip the
/// framing: it tells the forwarder how many input bytes belong to the body so far. STUB: the Http1 helper implements it.
/// </summary>
internal struct ChunkedDecoder
{
    /// <summary>True once the last chunk and the trailer section (ending in CRLF) were consumed.</summary>
    public readonly bool IsComplete => false;

    /// <summary>
    /// Examines <paramref name="input"/> from the current framing state. <paramref name="consumed"/> is the number
    /// of leading bytes that are valid chunked-body bytes (forward them and advance past them). Returns true when
    /// the body ended within them. Invalid framing throws <see cref="Http1Exception"/> (400).
    /// </summary>
    public bool Advance(ReadOnlySequence<byte> input, out long consumed)
    {
        throw new NotImplementedException();
    }

    public void Reset() => this = default;
}
