using System.Buffers;
using System.Net.Sockets;

namespace Router.Net.Transport;

internal sealed partial class TlsConnection
{
    // One SslStream write of up to this many bytes becomes up to four full 16 KiB TLS records; a multi-segment
    // buffer smaller than this is copied into one rented buffer so it is not sent as one short record per segment.
    private const int CoalesceLimit = 64 * 1024;

    private async Task ReceiveLoopAsync()
    {
        Exception? error = null;
        var writer = InputPipe.Writer;
        try
        {
            while (true)
            {
                // Zero-byte read first: SslStream waits on the socket without holding a buffer (ours or its own).
                await _stream.ReadAsync(Memory<byte>.Empty).ConfigureAwait(false);
                _receiveThread = Environment.CurrentManagedThreadId;

                var memory = writer.GetMemory(MinSegment);
                int received = await _stream.ReadAsync(memory).ConfigureAwait(false);
                if (received == 0)
                {
                    RecordClose("peer closed");
                    break;
                }

                writer.Advance(received);
                var flush = await writer.FlushAsync().ConfigureAwait(false);
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception ex)
        {
            error = ReceiveFailed(ex);
        }
        finally
        {
            await CompleteReceiveAsync(writer, error).ConfigureAwait(false);
        }
    }

    private async Task SendLoopAsync()
    {
        var reader = _output.Reader;
        Exception? error = null;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    if (buffer.IsSingleSegment)
                    {
                        await _stream.WriteAsync(buffer.First).ConfigureAwait(false);
                    }
                    else if (buffer.Length <= CoalesceLimit)
                    {
                        int length = (int)buffer.Length;
                        byte[] rented = ArrayPool<byte>.Shared.Rent(length);
                        try
                        {
                            buffer.CopyTo(rented);
                            await _stream.WriteAsync(rented.AsMemory(0, length)).ConfigureAwait(false);
                        }
                        finally
                        {
                            ArrayPool<byte>.Shared.Return(rented);
                        }
                    }
                    else
                    {
                        foreach (var segment in buffer)
                        {
                            await _stream.WriteAsync(segment).ConfigureAwait(false);
                        }
                    }
                }

                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }

            if (Volatile.Read(ref _aborted) == 0)
            {
                // close_notify, then FIN: the peer can tell a complete response from a truncated one.
                await _stream.ShutdownAsync().ConfigureAwait(false);
                Socket.Shutdown(SocketShutdown.Send);
            }
        }
        catch (Exception ex)
        {
            error = SendFailed(ex);
        }
        finally
        {
            await CompleteSendAsync(reader, error).ConfigureAwait(false);
        }
    }
}
