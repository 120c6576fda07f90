using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Router.Net.Transport;

/// <summary>
/// The input of a plain connection: the reader receives from the socket itself, into one rented buffer, when the
/// application asks for more. There is no input pipe and no receive loop. Subclasses supply how to wait for data and
/// how to receive: through the runtime's sockets (<see cref="SocketReader"/>, client connections) or our own epoll
/// loop (<see cref="Epoll.EpollReader"/>, client and upstream connections).
/// </summary>
/// <remarks>
/// <para>
/// Reading only on demand is the back-pressure (the kernel's receive window holds the rest), and it is what keeps an
/// idle keep-alive connection small: while it waits for the next request (<see cref="WaitForInputAsync"/>) it holds a
/// pending wait (a zero-byte receive, or a readiness edge) and no buffer or state machine. The buffer starts at 4 KiB
/// and doubles up to 64 KiB while reads come back full (a streaming body); once everything received is consumed it
/// goes back to the pool.
/// </para>
/// <para>
/// <see cref="CancelPendingRead"/> shuts the socket's receive side, which wakes a pending receive; the read then
/// reports <see cref="ReadResult.IsCanceled"/>. Every caller cancels only on the way to answering and closing (a
/// request-head or body-rate timeout, an upstream that failed mid-body), so a receive side that stays shut is what
/// they want. On the runtime's sockets, upstream connections keep the input pipe and its receive loop: an idle pooled
/// connection must notice the upstream closing it without anyone reading (on epoll the hang-up edge tells).
/// </para>
/// </remarks>
internal abstract class DirectReader : PipeReader
{
    private const int MinRead = 4096;
    private const int MaxRead = 64 * 1024;

    private readonly PipeConnection _connection;
    private byte[]? _buffer;
    private int _start;
    private int _end;
    private int _examined;
    private int _readSize = MinRead;
    private bool _lastReadFilled;
    private bool _receiving;
    private bool _waitedIdle;
    private bool _completed;
    private volatile bool _eof;
    private volatile Exception? _error;
    private int _cancel;

    protected DirectReader(PipeConnection connection)
    {
        _connection = connection;
    }

    /// <summary>True once the peer closed its side or a receive failed.</summary>
    public bool Ended => _eof || _error is not null;

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfCompleted();
        if (Interlocked.Exchange(ref _cancel, 0) != 0)
        {
            return new ValueTask<ReadResult>(new ReadResult(Buffered(), isCanceled: true, isCompleted: false));
        }

        if (_end > _examined || Ended)
        {
            return new ValueTask<ReadResult>(Current());
        }

        return ReadMoreAsync();
    }

    /// <summary>
    /// Waits, without a state machine or a buffer, until a read would find something: bytes, the end, an error or a
    /// cancellation. The request loop parks an idle keep-alive connection here, so it holds only the transport's own
    /// wait. Call <see cref="ReadAsync"/> after it completes; its result carries no meaning.
    /// </summary>
    public ValueTask<int> WaitForInputAsync()
    {
        if (Volatile.Read(ref _cancel) != 0 || _end > _start || _lastReadFilled || Ended)
        {
            return default;
        }

        ReturnBuffer();
        _waitedIdle = true;
        return WaitForDataAsync();
    }

    public override bool TryRead(out ReadResult result)
    {
        ThrowIfCompleted();
        if (Interlocked.Exchange(ref _cancel, 0) != 0)
        {
            result = new ReadResult(Buffered(), isCanceled: true, isCompleted: false);
            return true;
        }

        if (_end > _start || Ended)
        {
            result = Current();
            return true;
        }

        result = default;
        return false;
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        if (_buffer is null || !ReferenceEquals(consumed.GetObject(), _buffer))
        {
            // Nothing was read (an empty result): there is nothing to advance over.
            return;
        }

        int start = consumed.GetInteger() & int.MaxValue;
        int seen = ReferenceEquals(examined.GetObject(), _buffer) ? examined.GetInteger() & int.MaxValue : start;
        if (start < _start || start > _end || seen > _end)
        {
            throw new InvalidOperationException("The position is outside the data last read.");
        }

        _start = start;
        _examined = Math.Max(seen, start);
        if (_start == _end)
        {
            // Everything consumed: start over at the front; a connection between requests keeps no buffer.
            _start = _end = _examined = 0;
            if (!_lastReadFilled)
            {
                ReturnBuffer();
            }
        }
    }

    public override void CancelPendingRead()
    {
        Interlocked.Exchange(ref _cancel, 1);
        _connection.ShutdownReceive();
    }

    public override void Complete(Exception? exception = null)
    {
        _completed = true;
        if (!_receiving)
        {
            ReturnBuffer();
        }
    }

    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private async ValueTask<ReadResult> ReadMoreAsync()
    {
        _receiving = true;
        try
        {
            if (_start == _end && !_lastReadFilled)
            {
                // Wait for data without holding a buffer (a partly sent head, a body between chunks; an idle keep-alive
                // connection waits in WaitForInputAsync instead, without this state machine).
                ReturnBuffer();
                if (_waitedIdle)
                {
                    // WaitForInputAsync already waited for this read.
                    _waitedIdle = false;
                }
                else
                {
                    await WaitForDataAsync().ConfigureAwait(false);
                }

                if (Interlocked.Exchange(ref _cancel, 0) != 0)
                {
                    return new ReadResult(Buffered(), isCanceled: true, isCompleted: false);
                }
            }

            var memory = Reserve();
            int received = await ReceiveAsync(memory).ConfigureAwait(false);
            if (received == 0)
            {
                _eof = true;
                _connection.RecordClose("peer closed");
            }
            else
            {
                // Streaming bodies: grow reads while they come back full (fewer syscalls per MiB); small exchanges stay on 4 KiB.
                _lastReadFilled = received == memory.Length;
                _readSize = _lastReadFilled ? Math.Min(_readSize * 2, MaxRead) : MinRead;
                _end += received;
            }
        }
        catch (Exception ex)
        {
            _error = _connection.ReceiveFailed(ex) ?? new ConnectionAbortedException(_connection.CloseReason ?? "aborted");
        }
        finally
        {
            _receiving = false;
            if (_completed)
            {
                ReturnBuffer();
            }
        }

        if (Interlocked.Exchange(ref _cancel, 0) != 0)
        {
            return new ReadResult(Buffered(), isCanceled: true, isCompleted: false);
        }

        return Current();
    }

    /// <summary>Waits until the socket has data (or closed) without holding a buffer; the result is ignored.</summary>
    protected abstract ValueTask<int> WaitForDataAsync();

    /// <summary>Receives into <paramref name="memory"/>, waiting if nothing is there yet: bytes received, 0 at the end.</summary>
    protected abstract ValueTask<int> ReceiveAsync(Memory<byte> memory);

    /// <summary>Free space at the end of the buffer for the next receive: rents, compacts or grows as needed.</summary>
    private Memory<byte> Reserve()
    {
        var buffer = _buffer;
        if (buffer is not null && _start == _end && buffer.Length < _readSize)
        {
            // A body is streaming and reads keep filling the buffer: move up to the larger read size.
            ReturnBuffer();
            buffer = null;
        }

        if (buffer is null)
        {
            buffer = _buffer = PooledBytes.Rent(_readSize);
        }
        else if (buffer.Length - _end < Math.Min(_readSize, buffer.Length / 2))
        {
            int unconsumed = _end - _start;
            if (_start > 0 && buffer.Length - unconsumed >= Math.Min(_readSize, buffer.Length / 2))
            {
                // Slide what is still unconsumed (a partial head, a body's tail) to the front.
                buffer.AsSpan(_start, unconsumed).CopyTo(buffer);
            }
            else
            {
                // The unconsumed bytes fill the buffer (a head larger than one read): grow. The parser's header limits
                // bound how far, since a head that is too large is rejected before the next read.
                var bigger = PooledBytes.Rent(Math.Max(buffer.Length * 2, unconsumed + _readSize));
                buffer.AsSpan(_start, unconsumed).CopyTo(bigger);
                PooledBytes.Return(buffer);
                buffer = _buffer = bigger;
            }

            _examined -= _start;
            _end = unconsumed;
            _start = 0;
        }

        return buffer.AsMemory(_end);
    }

    private ReadResult Current()
    {
        var error = _error;
        if (error is not null)
        {
            throw error;
        }

        return new ReadResult(Buffered(), isCanceled: false, isCompleted: _eof);
    }

    protected ReadOnlySequence<byte> Buffered() =>
        _buffer is null ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(_buffer, _start, _end - _start);

    private void ReturnBuffer()
    {
        var buffer = _buffer;
        if (buffer is not null)
        {
            _buffer = null;
            _start = _end = _examined = 0;
            PooledBytes.Return(buffer);
        }
    }

    private void ThrowIfCompleted()
    {
        if (_completed)
        {
            throw new InvalidOperationException("Reading is not allowed after the reader was completed.");
        }
    }
}
