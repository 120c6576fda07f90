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

    /// <summary>Closes the transport once the send side drained; <paramref name="graceful"/> is false after an abort.</summary>
    protected abstract ValueTask CloseGracefullyAsync(bool graceful);
}
