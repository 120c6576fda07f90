using System.Buffers;
using System.IO.Pipelines;

namespace Router.Net.Http1;

/// <summary>
/// Reads whole request heads and skips bodies from a pipe, for the router's own small servers (admin, demo
/// upstreams). The proxy's request loop does the same inline, with its timeouts, in <c>ProxyConnection</c>.
/// </summary>
internal static class RequestHeadReader
{
    /// <summary>Reads one request head; false when the peer closed first. Malformed input throws <see cref="Http1Exception"/> (consumed).</summary>
    public static async ValueTask<bool> ReadAsync(PipeReader input, HttpRequestHead head, HttpLimits limits)
    {
        while (true)
        {
            var result = await input.ReadAsync().ConfigureAwait(false);
            var buffer = result.Buffer;
            if (buffer.IsEmpty && result.IsCompleted)
            {
                return false;
            }

            bool parsed;
            var reader = new SequenceReader<byte>(buffer);
            try
            {
                parsed = Http1Parser.TryParseRequestHead(ref reader, head, limits);
            }
            catch (Http1Exception)
            {
                input.AdvanceTo(buffer.End);
                throw;
            }

            if (parsed)
            {
                input.AdvanceTo(reader.Position);
                return true;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                return false;
            }
        }
    }

    /// <summary>Reads and discards the request's body (Content-Length or chunked); returns the bytes read (chunked: with framing), or -1 when the peer closed early.</summary>
    public static async ValueTask<long> SkipBodyAsync(PipeReader input, HttpRequestHead head)
    {
        long total = 0;
        if (head.Chunked)
        {
            var decoder = default(ChunkedDecoder);
            while (true)
            {
                var result = await input.ReadAsync().ConfigureAwait(false);
                bool done = decoder.Advance(result.Buffer, out long consumed);
                total += consumed;
                input.AdvanceTo(result.Buffer.GetPosition(consumed), done ? result.Buffer.GetPosition(consumed) : result.Buffer.End);
                if (done)
                {
                    return total;
                }

                if (result.IsCompleted)
                {
                    return -1;
                }
            }
        }

        long remaining = Math.Max(0, head.ContentLength);
        while (remaining > 0)
        {
            var result = await input.ReadAsync().ConfigureAwait(false);
            long take = Math.Min(remaining, result.Buffer.Length);
            input.AdvanceTo(result.Buffer.GetPosition(take));
            remaining -= take;
            total += take;
            if (result.IsCompleted && remaining > 0)
            {
                return -1;
            }
        }

        return total;
    }
}
