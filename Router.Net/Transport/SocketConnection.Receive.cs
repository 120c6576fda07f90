using System.Net.Sockets;

namespace Router.Net.Transport;

internal sealed partial class SocketConnection
{
    private async Task ReceiveLoopAsync()
    {
        Exception? error = null;
        var writer = _input.Writer;
        try
        {
            while (true)
            {
                // Zero-byte receive first: an idle connection holds no buffer until data is there.
                await _socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);

                var memory = writer.GetMemory(MinSegment);
                int received = await _socket.ReceiveAsync(memory, SocketFlags.None).ConfigureAwait(false);
                if (received == 0)
                {
                    Interlocked.CompareExchange(ref _closeReason, "peer closed", null);
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
        catch (SocketException ex)
        {
            Interlocked.CompareExchange(ref _closeReason, "receive: " + ex.SocketErrorCode, null);
            error = Volatile.Read(ref _aborted) != 0 ? null : new ConnectionResetException(ex.SocketErrorCode.ToString(), ex);
        }
        catch (ObjectDisposedException)
        {
            Interlocked.CompareExchange(ref _closeReason, "aborted", null);
        }
        catch (Exception ex)
        {
            error = ex;
        }
        finally
        {
            if (Volatile.Read(ref _aborted) != 0 && error is null)
            {
                error = new ConnectionAbortedException(CloseReason ?? "aborted");
            }

            await writer.CompleteAsync(error).ConfigureAwait(false);
        }
    }
}
