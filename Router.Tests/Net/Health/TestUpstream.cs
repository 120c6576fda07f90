using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Router.Tests.Net.Health;

/// <summary>
/// A loopback HTTP upstream for health-probe tests that can answer with any status, hang (accept and never answer),
/// or refuse connections (stop listening) and later listen again on the same port.
/// </summary>
internal sealed class TestUpstream : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _hung = [];
    private TcpListener? _listener;
    private Task _acceptLoop = Task.CompletedTask;
    private int _status = 200;
    private int _hang;
    private int _requests;

    public TestUpstream()
    {
        StartListening(0);
        EndPoint = (IPEndPoint)_listener!.LocalEndpoint;
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>Status sent to each request (when not hanging).</summary>
    public int Status
    {
        get => Volatile.Read(ref _status);
        set => Volatile.Write(ref _status, value);
    }

    /// <summary>When true, requests are read and never answered.</summary>
    public bool Hang
    {
        get => Volatile.Read(ref _hang) != 0;
        set => Volatile.Write(ref _hang, value ? 1 : 0);
    }

    /// <summary>Requests received so far.</summary>
    public int Requests => Volatile.Read(ref _requests);

    /// <summary>The last request head received.</summary>
    public string? LastRequest { get; private set; }

    /// <summary>Stops listening: new connections are refused.</summary>
    public async Task RefuseAsync()
    {
        TcpListener? listener = Interlocked.Exchange(ref _listener, null);
        listener?.Stop();
        await _acceptLoop.ConfigureAwait(false);
    }

    /// <summary>Listens again on the same port.</summary>
    public void Resume() => StartListening(EndPoint.Port);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await RefuseAsync().ConfigureAwait(false);
        lock (_hung)
        {
            foreach (Socket socket in _hung)
            {
                socket.Dispose();
            }
        }

        _stop.Dispose();
    }

    private void StartListening(int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        _listener = listener;
        _acceptLoop = AcceptAsync(listener);
    }

    private async Task AcceptAsync(TcpListener listener)
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptSocketAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }

            _ = ServeAsync(socket);
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        try
        {
            byte[] buffer = new byte[4096];
            int filled = 0;
            while (filled < buffer.Length)
            {
                int read = await socket.ReceiveAsync(buffer.AsMemory(filled), _stop.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    socket.Dispose();
                    return;
                }

                filled += read;
                if (buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8) >= 0)
                {
                    break;
                }
            }

            LastRequest = Encoding.ASCII.GetString(buffer, 0, filled);
            Interlocked.Increment(ref _requests);
            if (Hang)
            {
                lock (_hung)
                {
                    _hung.Add(socket);
                }

                return;
            }

            byte[] response = Encoding.ASCII.GetBytes($"HTTP/1.1 {Status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            await socket.SendAsync(response, _stop.Token).ConfigureAwait(false);
            socket.Shutdown(SocketShutdown.Both);
            socket.Dispose();
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            socket.Dispose();
        }
    }
}
