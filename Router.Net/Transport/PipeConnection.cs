using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

namespace Router.Net.Transport;

/// <summary>
/// What plain and TLS connections share: the input pipe and the pipe options, the close reason (first writer wins),
/// abort, and the graceful close order. Subclasses own the receive loop and the output side: a direct socket writer
/// for plain connections (<see cref="SocketWriter"/>), an output pipe and send loop for TLS.
/// </summary>
internal abstract class PipeConnection : ITransportConnection
{
    // 64 KiB in flight per direction bounds memory per connection whatever the body size (invariant 6);
    // it matches Kestrel's default MaxRequestBufferSize order of magnitude and keeps a 1 Gbps stream saturated on loopback.
    protected const int PauseThreshold = 64 * 1024;
    protected const int ResumeThreshold = 32 * 1024;
    protected const int MinSegment = 4096;
    protected const int MaxSegment = 64 * 1024;

    protected static readonly PipeOptions s_options = new(
        pool: null,
        readerScheduler: PipeScheduler.Inline,
        writerScheduler: PipeScheduler.Inline,
        pauseWriterThreshold: PauseThreshold,
        resumeWriterThreshold: ResumeThreshold,
        minimumSegmentSize: MinSegment,
        useSynchronizationContext: false);

    protected readonly Socket? _socket;
    private readonly Pipe? _input;
    protected Task _receiveTask = Task.CompletedTask;
    protected int _aborted;
    private int _sendFailed;
    private int _endedByReset;
    protected int _receiveThread;
    protected string? _closeReason;

    /// <param name="socket">
    /// The connected socket; null for a connection that owns only a descriptor (an epoll connection, accepted with
    /// accept4 or opened with our own connect), which then overrides the socket operations below.
    /// </param>
    /// <param name="inputPipe">False when the subclass reads the socket on demand itself (<see cref="SocketReader"/>).</param>
    protected PipeConnection(Socket? socket, bool inputPipe = true)
    {
        _socket = socket;
        RemoteEndPoint = socket?.RemoteEndPoint;
        _input = inputPipe ? new Pipe(s_options) : null;
    }

    public virtual PipeReader Input => InputPipe.Reader;

    /// <summary>The input pipe the receive loop fills (connections created with one).</summary>
    protected Pipe InputPipe => _input ?? throw new InvalidOperationException("This connection reads its socket directly.");

    public abstract PipeWriter Output { get; }

    public EndPoint? RemoteEndPoint { get; }

    /// <summary>The underlying socket (options, shutdown; never read or written around the connection).</summary>
    public Socket Socket => _socket ?? throw new InvalidOperationException("This connection owns a descriptor, not a Socket.");

    /// <summary>The peer's IP address as ASCII text (<c>unknown</c> when the peer has none), for X-Forwarded-For and logs.</summary>
    public virtual byte[] FormatRemoteAddress() => AddressText.Format(RemoteEndPoint);

    /// <summary>Shuts the receive side, which wakes a pending receive (<see cref="DirectReader.CancelPendingRead"/>).</summary>
    internal void ShutdownReceive() => Shutdown(SocketShutdown.Receive);

    /// <summary>Shuts the send side: a FIN after everything written (<see cref="SocketWriter"/>'s completion).</summary>
    internal void ShutdownSend() => Shutdown(SocketShutdown.Send);

    /// <summary>Closes with a reset, at once (<see cref="Abort"/>).</summary>
    protected virtual void CloseAbortively() => Socket.Close(0);

    /// <summary>shutdown(2) on the transport; the caller ignores a socket already closed or reset.</summary>
    protected virtual void ShutdownSocket(SocketShutdown how) => Socket.Shutdown(how);

    private void Shutdown(SocketShutdown how)
    {
        // Racing an abort (the heartbeat, a failed send) is normal here: a closed or reset socket needs no shutdown.
        try
        {
            ShutdownSocket(how);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>The first recorded reason this connection closed (first writer wins), for logs.</summary>
    public string? CloseReason => Volatile.Read(ref _closeReason);

    /// <summary>True once the peer closed its side or the connection was aborted.</summary>
    public abstract bool IsClosed { get; }

    public int ReceiveThread => Volatile.Read(ref _receiveThread);

    /// <summary>Open, and the input holds nothing: a receive loop would already have put unasked bytes or the end there.</summary>
    public virtual bool IsIdleClean()
    {
        // A failed send that did not abort (KeepReadingAfterSendFailure) left the output unusable; the receive side
        // may not have seen the end yet.
        if (IsClosed || Volatile.Read(ref _sendFailed) != 0)
        {
            return false;
        }

        if (Input.TryRead(out var result))
        {
            bool clean = result.Buffer.IsEmpty && !result.IsCompleted && !result.IsCanceled;
            Input.AdvanceTo(result.Buffer.Start);
            return clean;
        }

        return true;
    }

    public abstract void Start();

    public ValueTask<int> WaitForInputAsync() => Input is DirectReader direct ? direct.WaitForInputAsync() : default;

    /// <summary>Closes the socket at once (a reset to the peer): every pending read and write, TLS ones included, fails and both loops end.</summary>
    public void Abort(string reason)
    {
        RecordClose(reason);
        if (Interlocked.Exchange(ref _aborted, 1) != 0)
        {
            return;
        }

        try
        {
            CloseAbortively();
        }
        catch (ObjectDisposedException)
        {
        }

        OnAborted();
    }

    /// <summary>After <see cref="Abort"/> closed the socket: wake anything waiting that the socket itself will not.</summary>
    protected virtual void OnAborted()
    {
    }

    /// <summary>
    /// Completes the output (everything written is sent, then a FIN), completes the application's side of the input,
    /// then closes the transport gracefully (<see cref="CloseGracefullyAsync"/>) and waits for the receive loop to end.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await CompleteOutputAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
        }

        await Input.CompleteAsync().ConfigureAwait(false);
        bool graceful = Interlocked.Exchange(ref _aborted, 1) == 0;
        if (graceful)
        {
            RecordClose("closed");
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
    internal Exception? ReceiveFailed(Exception ex)
    {
        string? code = SocketErrorOf(ex);
        if (code is not null)
        {
            RecordClose("receive: " + code);
            return Volatile.Read(ref _aborted) != 0 ? null : new ConnectionResetException(code, ex);
        }

        if (ex is ObjectDisposedException)
        {
            RecordClose("aborted");
            return null;
        }

        return ex;
    }

    /// <summary>Records why the connection closed, unless a reason is already recorded.</summary>
    internal void RecordClose(string reason) => Interlocked.CompareExchange(ref _closeReason, reason, null);

    /// <summary>
    /// Completes the input pipe; after an abort the reader sees <see cref="ConnectionAbortedException"/>. A peer's reset
    /// of a connection that keeps reading after a send failure ends the input like a FIN instead, and sets
    /// <see cref="EndedByReset"/>: a pipe completed with an error throws away what its reader has not taken yet, and
    /// that can be the early answer that came just before the reset.
    /// </summary>
    protected async ValueTask CompleteReceiveAsync(PipeWriter writer, Exception? error)
    {
        if (Volatile.Read(ref _aborted) != 0 && error is null)
        {
            error = new ConnectionAbortedException(CloseReason ?? "aborted");
        }
        else if (error is ConnectionResetException && KeepReadingAfterSendFailure)
        {
            Volatile.Write(ref _endedByReset, 1);
            error = null;
        }

        await writer.CompleteAsync(error).ConfigureAwait(false);
    }

    /// <summary>The input ended at the peer's reset, read as an end after every byte before it (see <see cref="CompleteReceiveAsync"/>).</summary>
    public bool EndedByReset => Volatile.Read(ref _endedByReset) != 0;

    /// <summary>What the application's writer sees when a send fails; records the first close reason.</summary>
    internal Exception SendFailed(Exception ex)
    {
        string? code = SocketErrorOf(ex);
        if (code is not null)
        {
            RecordClose("send: " + code);
            return new ConnectionResetException(code, ex);
        }

        return ex is ObjectDisposedException ? new ConnectionAbortedException(CloseReason ?? "aborted") : ex;
    }

    /// <summary>
    /// Completes the output pipe. A failed send means the peer is gone: receiving stops too, unless
    /// <see cref="KeepReadingAfterSendFailure"/> (the peer's answer may still be unread).
    /// </summary>
    protected async ValueTask CompleteSendAsync(PipeReader reader, Exception? error)
    {
        await reader.CompleteAsync(error).ConfigureAwait(false);
        if (error is null)
        {
            return;
        }

        Volatile.Write(ref _sendFailed, 1);
        if (!KeepReadingAfterSendFailure)
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

    /// <summary>Completes the output: sends what is still written, then a FIN unless the connection was aborted.</summary>
    protected abstract ValueTask CompleteOutputAsync();

    /// <summary>True once <see cref="Abort"/> ran.</summary>
    internal bool Aborted => Volatile.Read(ref _aborted) != 0;

    /// <summary>
    /// False (the default): a failed send aborts the connection. True for upstream connections, plain and TLS: a server
    /// that answers early (413, 401) and closes before taking the whole request body makes our sends fail while its
    /// response is still unread in our receive queue, and an abort would throw that response away. The socket is dead
    /// anyway, so a read still ends by itself, after the bytes that arrived, at the peer's FIN or reset (where the input
    /// is a pipe, the reset ends it like a FIN and sets <see cref="EndedByReset"/>).
    /// </summary>
    internal bool KeepReadingAfterSendFailure { get; set; }

    /// <summary>Closes the transport once the send side drained; <paramref name="graceful"/> is false after an abort.</summary>
    protected abstract ValueTask CloseGracefullyAsync(bool graceful);
}
