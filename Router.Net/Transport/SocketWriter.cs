using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Router.Net.Transport;

/// <summary>
/// The output of a plain socket connection: bytes are written into one rented buffer and sent straight to the socket
/// on flush. There is no output pipe and no send loop, and no buffer is held between responses.
/// </summary>
/// <remarks>
/// A flush completes once the kernel took every byte; that is the back-pressure, so a writer is never more than one
/// flush ahead of the socket (the body copiers flush after each upstream read, so that is at most one read's worth).
/// A send that completes at once (the common case: the response fits in the socket buffer) is one direct syscall on
/// Linux (<see cref="NativeSend"/>) with no allocation and no thread hop; one that has to wait goes through the
/// runtime's asynchronous send and resumes on a pooled state machine. A failed send does not throw at the writer: it
/// records the reason, aborts the connection and reports the flush as completed, as a pipe whose reader went away does.
/// One writer at a time, as for any <see cref="PipeWriter"/>.
/// </remarks>
internal class SocketWriter : PipeWriter
{
    private const int MinBuffer = 4096;

    private static readonly FlushResult s_flushed = new(isCanceled: false, isCompleted: false);
    private static readonly FlushResult s_closed = new(isCanceled: false, isCompleted: true);

    private readonly PipeConnection _connection;
    private readonly Socket? _socket;
    private byte[]? _buffer;
    private int _written;
    private bool _failed;
    private bool _completed;

    /// <param name="connection">The connection written to.</param>
    /// <param name="handle">The socket's descriptor, for direct sends.</param>
    /// <param name="socket">The runtime socket for sends that wait; null when a subclass overrides <see cref="SendWaitingAsync"/>.</param>
    public SocketWriter(PipeConnection connection, SafeHandle handle, Socket? socket)
    {
        _connection = connection;
        Handle = handle;
        _socket = socket;
    }

    /// <summary>The socket's descriptor.</summary>
    protected SafeHandle Handle { get; }

    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        var buffer = Ensure(sizeHint);
        return buffer.AsMemory(_written);
    }

    public override Span<byte> GetSpan(int sizeHint = 0)
    {
        var buffer = Ensure(sizeHint);
        return buffer.AsSpan(_written);
    }

    public override void Advance(int bytes)
    {
        if ((uint)bytes > (uint)((_buffer?.Length ?? 0) - _written))
        {
            throw new ArgumentOutOfRangeException(nameof(bytes));
        }

        _written += bytes;
    }

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        if (_failed)
        {
            Release();
            return new ValueTask<FlushResult>(s_closed);
        }

        if (_written == 0)
        {
            return new ValueTask<FlushResult>(s_flushed);
        }

        int sent;
        try
        {
            sent = SendNow(_buffer.AsSpan(0, _written));
        }
        catch (Exception ex)
        {
            return new ValueTask<FlushResult>(Fail(ex));
        }

        if (sent == _written)
        {
            Release();
            return new ValueTask<FlushResult>(s_flushed);
        }

        return SendRestAsync(sent);
    }

    /// <summary>
    /// Sends what is written so far, then <paramref name="data"/> straight from its own memory (a large body chunk
    /// from the upstream's input: no copy into this writer). Completes once the kernel took every byte; false when the
    /// connection is gone. The caller must not release <paramref name="data"/> before this completes.
    /// </summary>
    public ValueTask<bool> SendAsync(ReadOnlySequence<byte> data)
    {
        if (_written > 0)
        {
            var flush = FlushAsync();
            if (!flush.IsCompletedSuccessfully)
            {
                return SendAfterFlushAsync(flush, data);
            }

            if (flush.Result.IsCompleted)
            {
                return new ValueTask<bool>(false);
            }
        }

        if (_failed || _completed)
        {
            return new ValueTask<bool>(false);
        }

        var position = data.Start;
        while (data.TryGet(ref position, out var segment))
        {
            int sent;
            try
            {
                sent = SendNow(segment.Span);
            }
            catch (Exception ex)
            {
                Fail(ex);
                return new ValueTask<bool>(false);
            }

            if (sent < segment.Length)
            {
                return SendSegmentsAsync(segment[sent..], data, position);
            }
        }

        return new ValueTask<bool>(true);
    }

    /// <summary>
    /// What the kernel takes of <paramref name="data"/> at once, without waiting: one direct non-blocking send on Linux
    /// (<see cref="NativeSend"/>), nothing elsewhere (every send then takes <see cref="SendWaitingAsync"/>).
    /// </summary>
    private int SendNow(ReadOnlySpan<byte> data) => NativeSend.Supported ? NativeSend.TrySend(Handle, data) : 0;

    /// <summary>
    /// Sends some of <paramref name="data"/> (at least one byte), waiting until the socket can take it; the caller
    /// already tried a direct send. Throws what the socket reports.
    /// </summary>
    protected virtual ValueTask<int> SendWaitingAsync(ReadOnlyMemory<byte> data) =>
        (_socket ?? throw new InvalidOperationException("No socket to wait on.")).SendAsync(data, SocketFlags.None);

    public override void CancelPendingFlush()
    {
        // Nothing to cancel: a flush waits only on the kernel, and Abort ends that.
    }

    public override void Complete(Exception? exception = null)
    {
        // Synchronous completion cannot wait for a send: what is still written is dropped, and the FIN follows.
        _completed = true;
        Release();
        ShutdownSend();
    }

    /// <summary>Sends what is still written, then a FIN (unless the connection was aborted). Idempotent.</summary>
    public override async ValueTask CompleteAsync(Exception? exception = null)
    {
        if (_completed)
        {
            return;
        }

        _completed = true;
        if (_written > 0 && exception is null)
        {
            await FlushAsync().ConfigureAwait(false);
        }

        Release();
        ShutdownSend();
    }

    private byte[] Ensure(int sizeHint)
    {
        if (_completed)
        {
            throw new InvalidOperationException("Writing is not allowed after the writer was completed.");
        }

        int need = Math.Max(sizeHint, 1);
        var buffer = _buffer;
        if (buffer is null)
        {
            buffer = PooledBytes.Rent(Math.Max(need, MinBuffer));
            _buffer = buffer;
            return buffer;
        }

        if (buffer.Length - _written >= need)
        {
            return buffer;
        }

        // Grow by doubling: a body chunk written in pieces (PipeWriter.Write) copies each byte O(1) times on average.
        var bigger = PooledBytes.Rent(Math.Max(_written + need, buffer.Length * 2));
        buffer.AsSpan(0, _written).CopyTo(bigger);
        PooledBytes.Return(buffer);
        _buffer = bigger;
        return bigger;
    }

    /// <summary>The slow path of <see cref="FlushAsync"/>: the rest of the buffer from <paramref name="sent"/> on.</summary>
    /// <remarks>A runtime send that completes at once finishes this without suspending, so without renting a box.</remarks>
    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private async ValueTask<FlushResult> SendRestAsync(int sent)
    {
        try
        {
            while (sent < _written)
            {
                sent += await SendWaitingAsync(_buffer.AsMemory(sent, _written - sent)).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            return Fail(ex);
        }

        Release();
        return s_flushed;
    }

    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private async ValueTask<bool> SendAfterFlushAsync(ValueTask<FlushResult> flush, ReadOnlySequence<byte> data)
    {
        if ((await flush.ConfigureAwait(false)).IsCompleted)
        {
            return false;
        }

        return await SendAsync(data).ConfigureAwait(false);
    }

    /// <summary>The slow path of <see cref="SendAsync"/>: the rest of one segment, then every segment after <paramref name="next"/>.</summary>
    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private async ValueTask<bool> SendSegmentsAsync(ReadOnlyMemory<byte> rest, ReadOnlySequence<byte> data, SequencePosition next)
    {
        try
        {
            while (true)
            {
                while (!rest.IsEmpty)
                {
                    int sent = await SendWaitingAsync(rest).ConfigureAwait(false);
                    rest = rest[sent..];
                }

                if (!data.TryGet(ref next, out rest))
                {
                    return true;
                }
            }
        }
        catch (Exception ex)
        {
            Fail(ex);
            return false;
        }
    }

    private FlushResult Fail(Exception ex)
    {
        _failed = true;
        Release();
        var error = _connection.SendFailed(ex);
        if (!_connection.KeepReadingAfterSendFailure)
        {
            _connection.Abort(_connection.CloseReason ?? error.Message);
        }

        return s_closed;
    }

    private void Release()
    {
        _written = 0;
        var buffer = _buffer;
        if (buffer is not null)
        {
            _buffer = null;
            PooledBytes.Return(buffer);
        }
    }

    private void ShutdownSend()
    {
        if (_failed || _connection.Aborted)
        {
            return;
        }

        _connection.ShutdownSend();
    }
}
