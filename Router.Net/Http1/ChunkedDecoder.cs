using System.Buffers;
using static Router.Net.Http1.RejectionReason;

namespace Router.Net.Http1;

/// <summary>
/// Validates chunked framing (RFC 9112 §7.1) of a body that is forwarded verbatim: it tells the forwarder how many
/// input bytes belong to the body so far. <see cref="Decode(ReadOnlySequence{byte}, IBufferWriter{byte}, out long)"/>
/// also strips the framing, for the one client that cannot read it (HTTP/1.0).
/// </summary>
/// <remarks>
/// A byte-at-a-time state machine for the framing (size lines, CRLFs, trailers: a few bytes per chunk) and a
/// bulk skip for chunk data. The state survives between calls, so a size line or trailer split across reads is
/// consumed as far as it has been validated: every consumed byte is valid so far, none is consumed twice, and
/// the forwarder never has to hold bytes back. Errors are thrown with the request-side status (400/431);
/// a forwarder decoding an upstream response maps them to 502.
/// </remarks>
internal struct ChunkedDecoder
{
    /// <summary>Longest chunk-size line including extensions (the line, without CRLF). 4 KiB, as Kestrel's chunk extension limit.</summary>
    public const int MaxSizeLineBytes = 4 * 1024;

    private const int MaxSizeDigits = 16;

    private State _state;
    private bool _sawExtension;
    private int _lineBytes;
    private int _trailerBytes;
    private int _maxTrailerBytes;
    private long _remaining;
    private long _dataBytes;

    /// <summary>A decoder whose trailer section may be as large as the header section (<see cref="HttpLimits.MaxHeaderBytes"/>).</summary>
    public ChunkedDecoder(HttpLimits limits) => _maxTrailerBytes = limits.MaxHeaderBytes;

    private enum State : byte
    {
        SizeStart = 0,
        Size,
        Extension,
        SizeLf,
        Data,
        DataCr,
        DataLf,
        TrailerLineStart,
        TrailerName,
        TrailerValue,
        TrailerLf,
        FinalLf,
        Complete,
    }

    /// <summary>True once the last chunk and the trailer section (ending in CRLF) were consumed.</summary>
    public readonly bool IsComplete => _state == State.Complete;

    /// <summary>Sum of the chunk sizes read so far (including the current chunk's, whose data may not have arrived): the body size so far.</summary>
    public readonly long DataBytes => _dataBytes;

    /// <summary>Data bytes still expected in the current chunk (0 outside chunk data).</summary>
    public readonly long RemainingChunkBytes => _state == State.Data ? _remaining : 0;

    private readonly int MaxTrailerBytes => _maxTrailerBytes > 0 ? _maxTrailerBytes : HttpLimits.Default.MaxHeaderBytes;

    /// <summary>
    /// Examines <paramref name="input"/> from the current framing state. <paramref name="consumed"/> is the number
    /// of leading bytes that are valid chunked-body bytes (forward them and advance past them). Returns true when
    /// the body ended within them. Invalid framing throws <see cref="Http1Exception"/> (400).
    /// </summary>
    public bool Advance(ReadOnlySequence<byte> input, out long consumed)
    {
        consumed = 0;
        if (_state == State.Complete)
        {
            return true;
        }

        if (input.IsSingleSegment)
        {
            consumed = Advance(input.FirstSpan);
            return _state == State.Complete;
        }

        foreach (var memory in input)
        {
            consumed += Advance(memory.Span);
            if (_state == State.Complete)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// As <see cref="Advance(ReadOnlySequence{byte}, out long)"/>, and writes the chunk data among the consumed bytes
    /// to <paramref name="data"/>: the body without its framing, extensions and trailers.
    /// </summary>
    public bool Decode(ReadOnlySequence<byte> input, IBufferWriter<byte> data, out long consumed)
    {
        consumed = 0;
        if (_state == State.Complete)
        {
            return true;
        }

        foreach (var memory in input)
        {
            consumed += Decode(memory.Span, data);
            if (_state == State.Complete)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Keeps the configured trailer limit; clears the framing state for the next body.</summary>
    public void Reset()
    {
        var max = _maxTrailerBytes;
        this = default;
        _maxTrailerBytes = max;
    }

    private int Advance(ReadOnlySpan<byte> span)
    {
        var i = 0;
        while (i < span.Length)
        {
            if (_state == State.Data)
            {
                var take = (int)Math.Min(_remaining, span.Length - i);
                i += take;
                _remaining -= take;
                if (_remaining == 0)
                {
                    _state = State.DataCr;
                }

                continue;
            }

            Step(span[i++]);
            if (_state == State.Complete)
            {
                break;
            }
        }

        return i;
    }

    // Advance's loop, with the data runs copied out. Kept apart so the verbatim path pays nothing for it.
    private int Decode(ReadOnlySpan<byte> span, IBufferWriter<byte> data)
    {
        var i = 0;
        while (i < span.Length)
        {
            if (_state == State.Data)
            {
                var take = (int)Math.Min(_remaining, span.Length - i);
                data.Write(span.Slice(i, take));
                i += take;
                _remaining -= take;
                if (_remaining == 0)
                {
                    _state = State.DataCr;
                }

                continue;
            }

            Step(span[i++]);
            if (_state == State.Complete)
            {
                break;
            }
        }

        return i;
    }

    private void Step(byte b)
    {
        switch (_state)
        {
            case State.SizeStart:
            case State.Size:
                if (_state == State.Size && b is (byte)'\r' or (byte)';' or (byte)' ' or (byte)'\t')
                {
                    CountLineByte();
                    if (b == (byte)'\r')
                    {
                        _state = State.SizeLf;
                    }
                    else
                    {
                        _state = State.Extension;
                        _sawExtension = b == (byte)';';
                    }

                    return;
                }

                var digit = HexValue(b);
                if (digit < 0 || _lineBytes >= MaxSizeDigits || _remaining > (long.MaxValue >> 4))
                {
                    // Not hex, empty, more than 16 digits, or past long.MaxValue.
                    Http1Exception.Throw(b == (byte)'\n' ? BareLineFeed : InvalidChunkSize);
                }

                _remaining = (_remaining << 4) | (uint)digit;
                _lineBytes++;
                _state = State.Size;
                return;

            case State.Extension:
                // chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ): only BWS may precede the first ';',
                // and nothing but HTAB and visible bytes may follow. We forward extensions without interpreting them.
                if (b == (byte)'\r')
                {
                    if (!_sawExtension)
                    {
                        Http1Exception.Throw(InvalidChunkExtension);
                    }

                    _state = State.SizeLf;
                }
                else if (b == (byte)';')
                {
                    _sawExtension = true;
                }
                else if (b == (byte)'\n')
                {
                    Http1Exception.Throw(BareLineFeed);
                }
                else if ((!_sawExtension && b is not ((byte)' ' or (byte)'\t')) || !HttpCharacters.FieldValue.Contains(b))
                {
                    Http1Exception.Throw(InvalidChunkExtension);
                }

                CountLineByte();
                return;

            case State.SizeLf:
                if (b != (byte)'\n')
                {
                    Http1Exception.Throw(BareCarriageReturn);
                }

                _lineBytes = 0;
                _sawExtension = false;
                _dataBytes = _remaining > long.MaxValue - _dataBytes ? long.MaxValue : _dataBytes + _remaining;
                _state = _remaining == 0 ? State.TrailerLineStart : State.Data;
                return;

            case State.DataCr:
                if (b != (byte)'\r')
                {
                    Http1Exception.Throw(b == (byte)'\n' ? BareLineFeed : MissingChunkDataTerminator);
                }

                _state = State.DataLf;
                return;

            case State.DataLf:
                if (b != (byte)'\n')
                {
                    Http1Exception.Throw(MissingChunkDataTerminator);
                }

                _state = State.SizeStart;
                return;

            case State.TrailerLineStart:
                CountTrailerByte();
                if (b == (byte)'\r')
                {
                    _state = State.FinalLf;
                }
                else if (b == (byte)'\n')
                {
                    Http1Exception.Throw(BareLineFeed);
                }
                else if (!HttpCharacters.Token.Contains(b))
                {
                    // Includes obs-fold (a line starting with SP/HTAB) and an empty field name.
                    Http1Exception.Throw(InvalidTrailer);
                }
                else
                {
                    _state = State.TrailerName;
                }

                return;

            case State.TrailerName:
                CountTrailerByte();
                if (b == (byte)':')
                {
                    _state = State.TrailerValue;
                }
                else if (!HttpCharacters.Token.Contains(b))
                {
                    Http1Exception.Throw(b == (byte)'\n' ? BareLineFeed : InvalidTrailer);
                }

                return;

            case State.TrailerValue:
                CountTrailerByte();
                if (b == (byte)'\r')
                {
                    _state = State.TrailerLf;
                }
                else if (b == (byte)'\n')
                {
                    Http1Exception.Throw(BareLineFeed);
                }
                else if (!HttpCharacters.FieldValue.Contains(b))
                {
                    Http1Exception.Throw(InvalidTrailer);
                }

                return;

            case State.TrailerLf:
                CountTrailerByte();
                if (b != (byte)'\n')
                {
                    Http1Exception.Throw(BareCarriageReturn);
                }

                _state = State.TrailerLineStart;
                return;

            case State.FinalLf:
                if (b != (byte)'\n')
                {
                    Http1Exception.Throw(BareCarriageReturn);
                }

                _state = State.Complete;
                return;

            default:
                return;
        }
    }

    private void CountLineByte()
    {
        if (++_lineBytes > MaxSizeLineBytes)
        {
            Http1Exception.Throw(ChunkSizeLineTooLong);
        }
    }

    private void CountTrailerByte()
    {
        if (++_trailerBytes > MaxTrailerBytes)
        {
            Http1Exception.Throw(TrailersTooLarge);
        }
    }

    private static int HexValue(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => -1,
    };
}
