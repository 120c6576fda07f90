using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

namespace Router.Net.Transport;

/// <summary>
/// What plain and TLS connections share: the two pipes and their options, the close reason (first writer wins),
/// abort, and the graceful close order. Subclasses own the two loops that move bytes between the pipes and the wire.
/// </summary>
internal abstract class PipeConnection : ITransportConnection
{
    // 64 KiB in flight per direction bounds memory per connection whatever the body size (invariant 6);
    // it matches Kestrel's default MaxRequestBufferSize order of magnitude and keeps a 1 Gbps stream saturated on loopback.
    protected const int PauseThreshold = 64 * 1024;
    protected const int ResumeThreshold = 32 * 1024;
    protected const int MinSegment = 4096;
    protected const int MaxSegment = 64 * 1024;

    private static readonly PipeOptions s_options = new(
        pool: null,
        readerScheduler: PipeScheduler.Inline,
        writerScheduler: PipeScheduler.Inline,
        pauseWriterThreshold: PauseThreshold,
        resumeWriterThreshold: ResumeThreshold,
        minimumSegmentSize: MinSegment,
        useSynchronizationContext: false);

    protected readonly Socket _socket;
    protected readonly Pipe _input = new(s_options);
    protected readonly Pipe _output = new(s_options);
    protected Task _receiveTask = Task.CompletedTask;
    protected Task _sendTask = Task.CompletedTask;
    protected int _aborted;
    protected string? _closeReason;

    protected PipeConnection(Socket socket)
    {
        _socket = socket;
        RemoteEndPoint = socket.RemoteEndPoint;
    }

    public PipeReader Input => _input.Reader;

    public PipeWriter Output => _output.Writer;

    public EndPoint? RemoteEndPoint { get; }

    /// <summary>The first recorded reason this connection closed (first writer wins), for logs.</summary>
    public string? CloseReason => Volatile.Read(ref _closeReason);

    /// <summary>True once the peer closed its side or the connection was aborted.</summary>
    public abstract bool IsClosed { get; }

    public abstract void Start();

    /// <summary>Closes the socket at once (a reset to the peer): every pending read and write, TLS ones included, fails and both loops end.</summary>
    public void Abort(string reason)
    {
        Interlocked.CompareExchange(ref _closeReason, reason, null);
        if (Interlocked.Exchange(ref _aborted, 1) != 0)
        {
            return;
        }

        try
        {
            _socket.Close(0);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>
    /// Completes the application's side of both pipes, lets the send loop drain everything written, then closes
    /// the transport gracefully (<see cref="CloseGracefullyAsync"/>) and waits for the receive loop to end.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await _output.Writer.CompleteAsync().ConfigureAwait(false);
        try
        {
            await _sendTask.ConfigureAwait(false);
        }
        catch (Exception)
        {
        }

        await _input.Reader.CompleteAsync().ConfigureAwait(false);
        bool graceful = Interlocked.Exchange(ref _aborted, 1) == 0;
        if (graceful)
        {
            Interlocked.CompareExchange(ref _closeReason, "closed", null);
        }

        try
        {
            await CloseGracefullyAsync(graceful).ConfigureAwait(false);
        }
        catch (Exception)
        {
        }

        try
        {
            await _receiveTask.ConfigureAwait(false);
        }
        catch (Exception)
        {
        }
    }

    /// <summary>
    /// What the application's reader sees when the receive loop fails: a reset, nothing when we aborted the connection
    /// ourselves (the loop ended because of it), or the exception as it is. Records the first close reason.
    /// </summary>
    protected Exception? ReceiveFailed(Exception ex)
    {
        string? code = SocketErrorOf(ex);
        if (code is not null)
        {
            Interlocked.CompareExchange(ref _closeReason, "receive: " + code, null);
            return Volatile.Read(ref _aborted) != 0 ? null : new ConnectionResetException(code, ex);
        }

        if (ex is ObjectDisposedException)
        {
            Interlocked.CompareExchange(ref _closeReason, "aborted", null);
            return null;
        }

        return ex;
    }

    /// <summary>Completes the input pipe; after an abort the reader sees <see cref="ConnectionAbortedException"/>.</summary>
    protected async ValueTask CompleteReceiveAsync(PipeWriter writer, Exception? error)
    {
        if (Volatile.Read(ref _aborted) != 0 && error is null)
        {
            error = new ConnectionAbortedException(CloseReason ?? "aborted");
        }

        await writer.CompleteAsync(error).ConfigureAwait(false);
    }

    /// <summary>What the application's writer sees when the send loop fails; records the first close reason.</summary>
    protected Exception SendFailed(Exception ex)
    {
        string? code = SocketErrorOf(ex);
        if (code is not null)
        {
            Interlocked.CompareExchange(ref _closeReason, "send: " + code, null);
            return new ConnectionResetException(code, ex);
        }

        return ex is ObjectDisposedException ? new ConnectionAbortedException(CloseReason ?? "aborted") : ex;
    }

    /// <summary>Completes the output pipe; a failed send means the peer is gone, so receiving stops too.</summary>
    protected async ValueTask CompleteSendAsync(PipeReader reader, Exception? error)
    {
        await reader.CompleteAsync(error).ConfigureAwait(false);
        if (error is not null)
        {
            Abort(CloseReason ?? "send failed");
        }
    }

    private static string? SocketErrorOf(Exception ex) => ex switch
    {
        SocketException socket => socket.SocketErrorCode.ToString(),
        IOException io => (io.InnerException as SocketException)?.SocketErrorCode.ToString() ?? io.Message,
        _ => null,
    };

    /// <summary>Closes the transport once the send side drained; <paramref name="graceful"/> is false after an abort.</summary>
    protected abstract ValueTask CloseGracefullyAsync(bool graceful);
}
