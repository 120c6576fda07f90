using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Router.Core.Routing;
using Router.Net.Http1;
using Router.Net.Transport;

namespace Router.Net.Forwarding;

// Body copies: each read is written to the other side and flushed, so at most a pipe's pause threshold
// is held per direction whatever the body size (invariant 6).
internal sealed partial class ProxyConnection
{
    /// <summary>Streams a Content-Length request body upstream (its reads count towards the minimum body data rate).</summary>
    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private async ValueTask<CopyStatus> CopyRequestBodyAsync(PipeWriter destination, long remaining)
    {
        var source = _client.Input;
        while (remaining > 0)
        {
            ReadResult result;
            try
            {
                BeginClientBodyRead();
                result = await source.ReadAsync().ConfigureAwait(false);
            }
            catch (IOException)
            {
                return CopyStatus.SourceFailed;
            }

            EndClientBodyRead(Math.Min(result.Buffer.Length, remaining));
            if (result.IsCanceled)
            {
                source.AdvanceTo(result.Buffer.Start);
                return CopyStatus.SourceFailed;
            }

            var buffer = result.Buffer;
            if (buffer.Length > remaining)
            {
                buffer = buffer.Slice(0, remaining);
            }

            Write(destination, buffer);
            remaining -= buffer.Length;
            source.AdvanceTo(buffer.End);
            if (remaining > 0 && result.IsCompleted)
            {
                return CopyStatus.SourceEnded;
            }

            if (!await FlushAsync(destination).ConfigureAwait(false))
            {
                return CopyStatus.DestinationClosed;
            }

            RequestBodyWentUp();
        }

        return CopyStatus.Done;
    }

    /// <summary>Streams a chunked request body upstream verbatim, validating its framing and the body size limit.</summary>
    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private async ValueTask<CopyStatus> CopyChunkedRequestBodyAsync(PipeWriter destination)
    {
        var source = _client.Input;
        while (true)
        {
            ReadResult result;
            try
            {
                BeginClientBodyRead();
                result = await source.ReadAsync().ConfigureAwait(false);
            }
            catch (IOException)
            {
                return CopyStatus.SourceFailed;
            }

            var buffer = result.Buffer;
            if (result.IsCanceled)
            {
                source.AdvanceTo(buffer.Start);
                return CopyStatus.SourceFailed;
            }

            bool done;
            long consumed;
            try
            {
                done = _requestChunks.Advance(buffer, out consumed);
            }
            catch (Http1Exception)
            {
                source.AdvanceTo(buffer.End);
                return CopyStatus.InvalidFraming;
            }

            EndClientBodyRead(consumed);

            // Body size limit: the chunk sizes announce the size, so the limit bites before the data arrives.
            // Nothing of the chunk that passes it is forwarded.
            if (_requestChunks.DataBytes > _runtime.Limits.MaxRequestBodyBytes)
            {
                source.AdvanceTo(buffer.End);
                return CopyStatus.TooLarge;
            }

            var body = buffer.Slice(0, consumed);
            Write(destination, body);

            // Short of the end the decoder consumed everything. At the end, bytes past the body (a pipelined
            // request) must stay unexamined, or the next head read waits for more input that may never come.
            source.AdvanceTo(body.End, done ? body.End : buffer.End);
            if (!await FlushAsync(destination).ConfigureAwait(false))
            {
                return CopyStatus.DestinationClosed;
            }

            RequestBodyWentUp();
            if (done)
            {
                return CopyStatus.Done;
            }

            if (result.IsCompleted)
            {
                return CopyStatus.SourceEnded;
            }
        }
    }

    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private async ValueTask<CopyStatus> CopyUntilCloseAsync(ITransportConnection from, PipeWriter destination, CompiledRoute? route)
    {
        var source = from.Input;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await source.ReadAsync().ConfigureAwait(false);
            }
            catch (IOException)
            {
                return CopyStatus.SourceFailed;
            }

            var buffer = result.Buffer;
            if (result.IsCanceled)
            {
                source.AdvanceTo(buffer.Start);
                return CopyStatus.SourceFailed;
            }

            Write(destination, buffer);
            CountResponseBytes(route, buffer.Length);
            source.AdvanceTo(buffer.End);
            Touch(route);
            if (!await FlushAsync(destination).ConfigureAwait(false))
            {
                return CopyStatus.DestinationClosed;
            }

            if (result.IsCompleted)
            {
                // A reset is not the end of a close-delimited body: what came before it went on, the cut goes on too.
                return from.EndedByReset ? CopyStatus.SourceFailed : CopyStatus.Done;
            }
        }
    }

    /// <summary>
    /// Streams a chunked response body to an HTTP/1.0 client as its data alone (framing validated and stripped,
    /// trailers dropped); the client connection's close ends it. Done only after the last chunk, so a cut body never
    /// ends like a whole one, and the upstream connection, whose framing stayed in step, can be reused.
    /// </summary>
    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private async ValueTask<CopyStatus> CopyDechunkedAsync(PipeReader source, CompiledRoute route)
    {
        var destination = _client.Output;
        _responseChunks.Reset();
        Touch(route);
        while (true)
        {
            ReadResult result;
            try
            {
                result = await source.ReadAsync().ConfigureAwait(false);
            }
            catch (IOException)
            {
                return CopyStatus.SourceFailed;
            }

            var buffer = result.Buffer;
            if (result.IsCanceled)
            {
                source.AdvanceTo(buffer.Start);
                return CopyStatus.SourceFailed;
            }

            long sent = _responseChunks.DataBytes - _responseChunks.RemainingChunkBytes;
            bool done;
            long consumed;
            try
            {
                done = _responseChunks.Decode(buffer, destination, out consumed);
            }
            catch (Http1Exception)
            {
                source.AdvanceTo(buffer.End);
                return CopyStatus.InvalidFraming;
            }

            _responseBytes += _responseChunks.DataBytes - _responseChunks.RemainingChunkBytes - sent;

            // At the body's end, bytes past it stay unexamined (as for pipelined requests).
            var body = buffer.Slice(0, consumed);
            source.AdvanceTo(body.End, done ? body.End : buffer.End);
            Touch(route);
            if (done)
            {
                return CopyStatus.Done;
            }

            if (result.IsCompleted)
            {
                return CopyStatus.SourceEnded;
            }

            if (!await FlushAsync(destination).ConfigureAwait(false))
            {
                return CopyStatus.DestinationClosed;
            }
        }
    }

    /// <summary>Response copies pass their route (their bytes are counted); tunnel copies pass null.</summary>
    private void CountResponseBytes(CompiledRoute? route, long bytes)
    {
        if (route is not null)
        {
            _responseBytes += bytes;
        }
    }

    private static void Write(PipeWriter destination, in ReadOnlySequence<byte> buffer)
    {
        if (buffer.IsSingleSegment)
        {
            destination.Write(buffer.FirstSpan);
            return;
        }

        foreach (var segment in buffer)
        {
            destination.Write(segment.Span);
        }
    }

    private static async ValueTask<bool> FlushAsync(PipeWriter destination)
    {
        try
        {
            var flush = await destination.FlushAsync().ConfigureAwait(false);
            return !flush.IsCompleted && !flush.IsCanceled;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
        catch (IOException)
        {
            return false;
        }
    }
}
