using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Router.Net.Tls;

namespace Router.Net.Transport;

/// <summary>
/// A TLS stream over a socket as a pair of pipes, so the parser and the forwarder see the same
/// <see cref="ITransportConnection"/> as for plain sockets.
/// </summary>
/// <remarks>
/// Our own two loops (SslStream -> input pipe, output pipe -> SslStream) rather than <c>PipeReader.Create(stream)</c>:
/// the loops let us do a zero-byte read first (SslStream passes it through to the socket since .NET 6 and frees its
/// internal buffer while idle, so an idle TLS connection holds no buffer), share the inline-scheduled pipe options
/// and 64 KiB back-pressure bound of <see cref="SocketConnection"/>, and coalesce multi-segment writes into one
/// SslStream write (fewer, fuller TLS records). In the steady state our loops allocate nothing per read or write
/// (pipe segments are pooled, the coalescing buffer is rented); what SslStream allocates per operation inside the
/// runtime was not measured here.
/// Server connections handshake inside <see cref="Start"/> (the forwarder just sees the input pipe fill or complete);
/// client connections handshake in <see cref="ConnectAsync"/> before the pool hands them out.
/// </remarks>
internal sealed partial class TlsConnection : ITransportConnection
{
    private const int PauseThreshold = 64 * 1024;
    private const int ResumeThreshold = 32 * 1024;
    private const int MinSegment = 4096;

    private static readonly PipeOptions s_options = new(
        pool: null,
        readerScheduler: PipeScheduler.Inline,
        writerScheduler: PipeScheduler.Inline,
        pauseWriterThreshold: PauseThreshold,
        resumeWriterThreshold: ResumeThreshold,
        minimumSegmentSize: MinSegment,
        useSynchronizationContext: false);

    private readonly Socket _socket;
    private readonly SslStream _stream;
    private readonly Pipe _input;
    private readonly Pipe _output;
    private readonly TlsServerContext? _server;
    private Task _receiveTask = Task.CompletedTask;
    private Task _sendTask = Task.CompletedTask;
    private int _aborted;
    private int _started;
    private string? _closeReason;

    private TlsConnection(Socket socket, SslStream stream, TlsServerContext? server)
    {
        _socket = socket;
        _stream = stream;
        _server = server;
        _input = new Pipe(s_options);
        _output = new Pipe(s_options);
        RemoteEndPoint = socket.RemoteEndPoint;
    }

    public PipeReader Input => _input.Reader;

    public PipeWriter Output => _output.Writer;

    public EndPoint? RemoteEndPoint { get; }

    /// <summary>The negotiated stream, for tests and logs (protocol, cipher, remote certificate).</summary>
    public SslStream Stream => _stream;

    public string? CloseReason => Volatile.Read(ref _closeReason);

    public bool IsClosed => Volatile.Read(ref _aborted) != 0 || (Volatile.Read(ref _started) != 0 && _receiveTask.IsCompleted);

    /// <summary>A server-side connection; the handshake runs when <see cref="Start"/> is called.</summary>
    public static TlsConnection Accept(Socket socket, TlsServerContext server)
    {
        socket.NoDelay = true;
        var stream = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        return new TlsConnection(socket, stream, server);
    }

    /// <summary>
    /// Handshakes as a client over a connected socket, within <paramref name="timeoutMs"/>. On failure the socket is
    /// disposed and the exception (<see cref="System.Security.Authentication.AuthenticationException"/>, IOException,
    /// OperationCanceledException on timeout) propagates.
    /// </summary>
    public static async ValueTask<TlsConnection> ConnectAsync(Socket socket, SslClientAuthenticationOptions options, int timeoutMs)
    {
        var stream = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        using var timeout = new CancellationTokenSource(timeoutMs);
        try
        {
            await stream.AuthenticateAsClientAsync(options, timeout.Token).ConfigureAwait(false);
        }
        catch
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return new TlsConnection(socket, stream, server: null);
    }

    public void Start()
    {
        Volatile.Write(ref _started, 1);
        _receiveTask = _server is null ? RunAsync() : HandshakeThenRunAsync(_server);
    }

    public void Abort(string reason)
    {
        Interlocked.CompareExchange(ref _closeReason, reason, null);
        if (Interlocked.Exchange(ref _aborted, 1) != 0)
        {
            return;
        }

        try
        {
            // Closing the socket fails every pending SslStream operation at once (an RST to the peer).
            _socket.Close(0);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>
    /// Completes the application's side of both pipes, lets the send loop drain everything written, sends
    /// close_notify and a FIN, then closes.
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
        }

        try
        {
            // Also closes the socket; a receive still pending fails and ends the receive loop.
            await _stream.DisposeAsync().ConfigureAwait(false);
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

    private async Task HandshakeThenRunAsync(TlsServerContext server)
    {
        if (!server.TryEnterHandshake())
        {
            // Over the concurrent-handshake limit: refuse now rather than queue (a flood of slow handshakes must not
            // grow memory or delay established connections).
            Abort("tls: too many concurrent handshakes");
            await _input.Writer.CompleteAsync().ConfigureAwait(false);
            return;
        }

        bool ok = false;
        try
        {
            using var timeout = new CancellationTokenSource(server.HandshakeTimeout);
            await _stream.AuthenticateAsServerAsync(TlsServerContext.SelectOptions, server, timeout.Token).ConfigureAwait(false);
            ok = true;
        }
        catch (OperationCanceledException)
        {
            server.CountFailure(timedOut: true);
            Abort("tls: handshake timeout");
        }
        catch (Exception ex) when (ex is IOException or System.Security.Authentication.AuthenticationException or SocketException or ObjectDisposedException)
        {
            server.CountFailure(timedOut: false);
            Abort("tls: handshake failed: " + ex.Message);
        }
        finally
        {
            server.ExitHandshake();
        }

        if (!ok)
        {
            // The forwarder sees an empty, completed input: the connection closes without a response.
            await _input.Writer.CompleteAsync().ConfigureAwait(false);
            return;
        }

        server.CountHandshake();
        await RunAsync().ConfigureAwait(false);
    }

    private Task RunAsync()
    {
        _sendTask = SendLoopAsync();
        return ReceiveLoopAsync();
    }
}
