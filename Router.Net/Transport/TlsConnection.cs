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
internal sealed partial class TlsConnection : PipeConnection
{
    private readonly SslStream _stream;
    private readonly TlsServerContext? _server;
    private readonly Pipe _output = new(s_options);
    private Task _sendTask = Task.CompletedTask;
    private int _started;

    private TlsConnection(Socket socket, SslStream stream, TlsServerContext? server)
        : base(socket)
    {
        _stream = stream;
        _server = server;
    }

    /// <summary>The negotiated stream, for tests and logs (protocol, cipher, remote certificate).</summary>
    public SslStream Stream => _stream;

    public override bool IsClosed => Aborted || (Volatile.Read(ref _started) != 0 && _receiveTask.IsCompleted);

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

    public override PipeWriter Output => _output.Writer;

    public override void Start()
    {
        Volatile.Write(ref _started, 1);
        _receiveTask = _server is null ? RunAsync() : HandshakeThenRunAsync(_server);
    }

    /// <summary>Completes the output pipe and lets the send loop drain it (close_notify and FIN are the loop's last step).</summary>
    protected override async ValueTask CompleteOutputAsync()
    {
        await _output.Writer.CompleteAsync().ConfigureAwait(false);
        await _sendTask.ConfigureAwait(false);
    }

    /// <summary>Sends close_notify and a FIN after the send loop drained; disposing the stream also closes the socket.</summary>
    protected override async ValueTask CloseGracefullyAsync(bool graceful) => await _stream.DisposeAsync().ConfigureAwait(false);

    private async Task HandshakeThenRunAsync(TlsServerContext server)
    {
        if (!server.TryEnterHandshake())
        {
            // Over the concurrent-handshake limit: refuse now rather than queue (a flood of slow handshakes must not
            // grow memory or delay established connections).
            Abort("tls: too many concurrent handshakes");
            await InputPipe.Writer.CompleteAsync().ConfigureAwait(false);
            return;
        }

        bool ok = false;
        try
        {
            using var timeout = new CancellationTokenSource(server.HandshakeTimeout);
            if (await AnswerPlainHttpAsync(timeout.Token).ConfigureAwait(false))
            {
                server.CountFailure(timedOut: false);
                Abort("tls: plain HTTP on a TLS port");
                await InputPipe.Writer.CompleteAsync().ConfigureAwait(false);
                return;
            }

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
            await InputPipe.Writer.CompleteAsync().ConfigureAwait(false);
            return;
        }

        server.CountHandshake();
        await RunAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// A TLS connection opens with a handshake record (0x16); a first byte that is an upper-case letter is an HTTP
    /// method: plain HTTP sent to the TLS port. Answer it in plain text, as nginx does, so the user sees why instead
    /// of a reset; then a FIN, and what the client still sends is drained until it closes or the timeout.
    /// </summary>
    private async ValueTask<bool> AnswerPlainHttpAsync(CancellationToken timeout)
    {
        var socket = Socket;
        var first = new byte[16];
        int peeked = await socket.ReceiveAsync(first, SocketFlags.Peek, timeout).ConfigureAwait(false);
        if (!LooksLikeHttp(first.AsSpan(0, peeked)))
        {
            return false;
        }

        var drain = new byte[1024];
        await socket.SendAsync(s_plainHttpAnswer, SocketFlags.None, timeout).ConfigureAwait(false);
        socket.Shutdown(SocketShutdown.Send);
        using var linger = CancellationTokenSource.CreateLinkedTokenSource(timeout);
        linger.CancelAfter(2000);
        try
        {
            while (await socket.ReceiveAsync(drain, SocketFlags.None, linger.Token).ConfigureAwait(false) > 0)
            {
            }
        }
        catch (OperationCanceledException)
        {
            // The client did not close within the linger time: close anyway.
        }

        return true;
    }

    /// <summary>A method token (upper-case letters) and a space: "GET ", "POST ", and so on.</summary>
    private static bool LooksLikeHttp(ReadOnlySpan<byte> start)
    {
        for (int i = 0; i < start.Length; i++)
        {
            byte b = start[i];
            if (b == (byte)' ')
            {
                return i > 0;
            }

            if (b is < (byte)'A' or > (byte)'Z')
            {
                return false;
            }
        }

        return false;
    }

    private static readonly byte[] s_plainHttpAnswer =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 44\r\nConnection: close\r\n\r\nThis port speaks HTTPS: use an https:// URL\n"u8.ToArray();

    private Task RunAsync()
    {
        _sendTask = SendLoopAsync();
        return ReceiveLoopAsync();
    }
}
