using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using Router.Net.Http1;

namespace Router.Fuzz;

/// <summary>
/// The fuzz targets. Each one must not throw anything but <see cref="Http1Exception"/>, and must reach the same
/// outcome whether the input arrives as one segment, as several, or one byte at a time (the forwarder's reads cut
/// input anywhere). Any other exception, or a disagreement, escapes and AFL++ records it as a crash.
/// </summary>
internal static class Targets
{
    private static readonly HttpLimits Limits = new() { MaxRequestLineBytes = 512, MaxHeaderBytes = 2048, MaxHeaderCount = 20 };

    public static bool TryGet(string name, [NotNullWhen(true)] out Action<byte[]>? target)
    {
        target = name switch
        {
            "request" => Request,
            "response" => Response,
            "chunked" => Chunked,
            _ => null,
        };
        return target is not null;
    }

    public static void Request(byte[] input) => Compare(input, ParseRequest);

    public static void Response(byte[] input) => Compare(input, ParseResponse);

    /// <summary>The decoder over the whole input, over three segments, and fed one byte per call must agree.</summary>
    public static void Chunked(byte[] input)
    {
        var whole = Decode(input, chunkSize: input.Length);
        var pieces = Decode(input, chunkSize: Math.Max(1, input.Length / 3));
        var bytes = Decode(input, chunkSize: 1);
        Agree(whole, pieces, "three-piece");
        Agree(whole, bytes, "byte-at-a-time");
    }

    private static string Decode(byte[] input, int chunkSize)
    {
        var decoder = new ChunkedDecoder(Limits);
        long total = 0;
        try
        {
            for (var offset = 0; offset < input.Length || input.Length == 0; offset += chunkSize)
            {
                var length = Math.Min(chunkSize, input.Length - offset);
                var done = decoder.Advance(new ReadOnlySequence<byte>(input, offset, length), out var consumed);
                if (consumed < 0 || consumed > length)
                {
                    throw new InvalidOperationException($"consumed {consumed} of {length}");
                }

                total += consumed;
                if (done)
                {
                    return $"complete at {total}";
                }

                // The decoder never holds bytes back: short of completion it consumes everything it was given.
                if (consumed != length)
                {
                    throw new InvalidOperationException($"incomplete but consumed {consumed} of {length}");
                }

                if (input.Length == 0)
                {
                    break;
                }
            }

            return $"incomplete at {total}";
        }
        catch (Http1Exception e)
        {
            return $"rejected {e.Reason}";
        }
    }

    private static void Compare(byte[] input, Func<ReadOnlySequence<byte>, string> parse)
    {
        var whole = parse(new ReadOnlySequence<byte>(input));
        if (input.Length < 3)
        {
            return;
        }

        Agree(whole, parse(Split(input, input.Length / 3, 2 * input.Length / 3)), "three segments");
        Agree(whole, parse(Split(input, 1, input.Length - 1)), "edge segments");
    }

    private static void Agree(string expected, string actual, string how)
    {
        if (expected != actual)
        {
            throw new InvalidOperationException($"{how}: '{actual}' but whole input: '{expected}'");
        }
    }

    private static string ParseRequest(ReadOnlySequence<byte> input)
    {
        var head = new HttpRequestHead();
        var reader = new SequenceReader<byte>(input);
        try
        {
            if (!Http1Parser.TryParseRequestHead(ref reader, head, Limits))
            {
                Unconsumed(reader);
                return "incomplete";
            }

            var text = new StringBuilder();
            text.Append(reader.Consumed).Append(' ').Append(head.Method).Append(' ').Append(head.Version)
                .Append(" cl=").Append(head.ContentLength).Append(" chunked=").Append(head.Chunked)
                .Append(" conn=").Append(head.Connection).Append(" upgrade=").Append(head.HasUpgrade).Append(" underscore=").Append(head.UnderscoreInNames);
            Append(text, head.Buffer, head.Length, head.MethodToken);
            Append(text, head.Buffer, head.Length, head.Target);
            // A path with dot segments is normalised into the buffer after the head: inside the buffer, and stable.
            Append(text, head.Buffer, head.Path.Start >= head.Length ? head.Buffer.Length : head.Length, head.Path);
            var path = head.Buffer.AsSpan(head.Path.Start, head.Path.Length).ToArray();
            if (path.Length > 0 && path[0] == (byte)'/' && PathNormalizer.RemoveDotSegments(path) != head.Path.Length)
            {
                throw new InvalidOperationException("a routed path still has dot segments");
            }

            Append(text, head.Buffer, head.Length, head.Query);
            Append(text, head.Buffer, head.Length, head.Host);
            AppendHeaders(text, head.Buffer, head.Length, head.Headers, head.HeaderCount);
            if (head.Chunked && head.ContentLength >= 0)
            {
                throw new InvalidOperationException("both chunked and Content-Length");
            }

            return text.ToString();
        }
        catch (Http1Exception e)
        {
            return $"rejected {e.Reason}";
        }
        finally
        {
            head.Release();
        }
    }

    private static string ParseResponse(ReadOnlySequence<byte> input)
    {
        var head = new HttpResponseHead();
        var reader = new SequenceReader<byte>(input);
        try
        {
            if (!Http1Parser.TryParseResponseHead(ref reader, head, Limits))
            {
                Unconsumed(reader);
                return "incomplete";
            }

            if (head.StatusCode is < 100 or > 999)
            {
                throw new InvalidOperationException($"status {head.StatusCode}");
            }

            var text = new StringBuilder();
            text.Append(reader.Consumed).Append(' ').Append(head.StatusCode).Append(' ').Append(head.Version)
                .Append(" cl=").Append(head.ContentLength).Append(" chunked=").Append(head.Chunked)
                .Append(" conn=").Append(head.Connection);
            Append(text, head.Buffer, head.Length, head.Reason);
            AppendHeaders(text, head.Buffer, head.Length, head.Headers, head.HeaderCount);
            if (head.Chunked && head.ContentLength >= 0)
            {
                throw new InvalidOperationException("both chunked and Content-Length");
            }

            return text.ToString();
        }
        catch (Http1Exception e)
        {
            return $"rejected {e.Reason}";
        }
        finally
        {
            head.Release();
        }
    }

    private static void Unconsumed(SequenceReader<byte> reader)
    {
        if (reader.Consumed != 0)
        {
            throw new InvalidOperationException("incomplete head consumed input");
        }
    }

    private static void AppendHeaders(StringBuilder text, byte[] buffer, int length, HeaderField[] headers, int count)
    {
        for (var i = 0; i < count; i++)
        {
            Append(text, buffer, length, headers[i].Name);
            Append(text, buffer, length, headers[i].Value);
        }
    }

    /// <summary>Every segment lies inside the head; its bytes (not its offsets) go into the outcome.</summary>
    private static void Append(StringBuilder text, byte[] buffer, int length, HeadSegment segment)
    {
        if (segment.Start < 0 || segment.Length < 0 || segment.Start + segment.Length > length)
        {
            throw new InvalidOperationException($"segment {segment} outside head of {length}");
        }

        text.Append(" [").Append(Encoding.Latin1.GetString(buffer, segment.Start, segment.Length)).Append(']');
    }

    private static ReadOnlySequence<byte> Split(byte[] data, int cut1, int cut2)
    {
        var first = new Segment(data.AsMemory(0, cut1).ToArray(), 0);
        var second = first.Append(data.AsMemory(cut1, cut2 - cut1).ToArray());
        var third = second.Append(data.AsMemory(cut2).ToArray());
        return new ReadOnlySequence<byte>(first, 0, third, third.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
