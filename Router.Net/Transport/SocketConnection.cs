using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

namespace Router.Net.Transport;

/// <summary>
/// A socket as a pair of pipes: a receive loop fills <see cref="Input"/>, a send loop drains <see cref="Output"/>.
/// Both pipes use inline scheduling so socket completions run the application code without a thread hop.
/// </summary>
internal sealed partial class SocketConnection : ITransportConnection
{
    // 64 KiB in flight per direction bounds memory per connection whatever the body size (invariant 6);
    // it matches Kestrel's default MaxRequestBufferSize order of magnitude and keeps a 1 Gbps stream saturated on loopback.
    private const int PauseThreshold = 64 * 1024;
    private const int ResumeThreshold = 32 * 1024;
    private const int MinSegment = 4096;
    private const int MaxSegment = 64 * 1024;

    private static readonly PipeOptions s_options = new(
        pool: null,
        readerScheduler: PipeScheduler.Inline,
        writerScheduler: PipeScheduler.Inline,
        pauseWriterThreshold: PauseThreshold,
        resumeWriterThreshold: ResumeThreshold,
        minimumSegmentSize: MinSegment,
        useSynchronizationContext: false);

    private readonly Socket _socket;
    private readonly Pipe _input;
    private readonly Pipe _output;
    private Task _receiveTask = Task.CompletedTask;
    private Task _sendTask = Task.CompletedTask;
    private int _aborted;
    private string? _closeReason;

    public SocketConnection(Socket socket)
    {
        _socket = socket;
        _socket.NoDelay = true;
        _input = new Pipe(s_options);
        _output = new Pipe(s_options);
        RemoteEndPoint = socket.RemoteEndPoint;
        LocalEndPoint = socket.LocalEndPoint;
    }

    public PipeReader Input => _input.Reader;

    public PipeWriter Output => _output.Writer;

    public EndPoint? RemoteEndPoint { get; }

    public EndPoint? LocalEndPoint { get; }

    public Socket Socket => _socket;

    /// <summary>The first recorded reason this connection closed (first writer wins), for logs.</summary>
    public string? CloseReason => Volatile.Read(ref _closeReason);

    /// <summary>True once the peer closed its side or the connection was aborted.</summary>
    public bool IsClosed => Volatile.Read(ref _aborted) != 0 || _receiveTask.IsCompleted;

    public void Start()
    {
        _receiveTask = ReceiveLoopAsync();
        _sendTask = SendLoopAsync();
    }

    /// <summary>Closes the socket at once; both loops end and complete their pipes.</summary>
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
    /// Completes the application's side of both pipes, lets the send loop drain everything written
    /// (it ends with a FIN), then closes the socket gracefully.
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
        if (Interlocked.Exchange(ref _aborted, 1) == 0)
        {
            Interlocked.CompareExchange(ref _closeReason, "closed", null);
            _socket.Dispose();
        }

        try
        {
            await _receiveTask.ConfigureAwait(false);
        }
        catch (Exception)
        {
        }
    }
}
