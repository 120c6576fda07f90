using System.Net.Sockets;

namespace Router.Net.Transport;

internal sealed partial class SocketConnection
{
    private async Task ReceiveLoopAsync()
    {
        Exception? error = null;
        var writer = InputPipe.Writer;
        try
        {
            int sizeHint = MinSegment;
            bool lastReadFilled = false;
            while (true)
            {
                if (!lastReadFilled)
                {
                    // Zero-byte receive first: an idle connection holds no buffer until data is there. Skipped while a
                    // stream is flowing (the last read filled its buffer), where it would only cost a syscall.
                    await Socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
                    _receiveThread = Environment.CurrentManagedThreadId;
                }

                var memory = writer.GetMemory(sizeHint);
                int received = await Socket.ReceiveAsync(memory, SocketFlags.None).ConfigureAwait(false);
                if (received == 0)
                {
                    RecordClose("peer closed");
                    break;
                }

                // Large bodies: grow the read size while reads come back full (4 KiB -> 64 KiB), fewer syscalls per MiB;
                // small exchanges stay on 4 KiB blocks.
                lastReadFilled = received == memory.Length;
                sizeHint = lastReadFilled ? Math.Min(sizeHint * 2, MaxSegment) : MinSegment;
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
}
