using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Router.EmbeddingTests.Support;

/// <summary>
/// A minimal HTTP/1.1 upstream on loopback: answers every request with a fixed text and closes. With
/// <see cref="Hold"/> set it answers only once released, so a test can keep a request in flight.
/// </summary>
internal sealed class TestUpstream : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly byte[] _response;
    private readonly Task _accepting;
    private readonly CancellationTokenSource _stopping = new();
    private TaskCompletionSource _received = NewSignal();
    private TaskCompletionSource _release = NewSignal();

    public TestUpstream(string text)
    {
        var body = Encoding.UTF8.GetBytes(text);
        _response = [.. Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n"), .. body];
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>When true, requests wait for <see cref="Release"/> before they are answered.</summary>
    public bool Hold { get; set; }

    /// <summary>Completes when the next request head has arrived.</summary>
    public Task RequestReceived => Volatile.Read(ref _received).Task;

    public void Release() => Volatile.Read(ref _release).TrySetResult();

    public async ValueTask DisposeAsync()
    {
        Release();

        // Say so before the listener stops: the accept loop may be between an accept and the next one, and then its
        // next AcceptSocketAsync throws InvalidOperationException ("Not listening") rather than a socket error.
        await _stopping.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stopping.Dispose();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private async Task AcceptAsync()
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stopping.Token);
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                // Disposed: whatever the stopped listener threw (cancelled, aborted, disposed, not listening) ends the loop.
                return;
            }

            _ = AnswerAsync(socket);
        }
    }

    private async Task AnswerAsync(Socket socket)
    {
        using (socket)
        {
            try
            {
                var buffer = new byte[8192];
                int received = 0;
                while (buffer.AsSpan(0, received).IndexOf("\r\n\r\n"u8) < 0)
                {
                    int n = await socket.ReceiveAsync(buffer.AsMemory(received), SocketFlags.None);
                    if (n == 0 || received + n == buffer.Length)
                    {
                        return;
                    }

                    received += n;
                }

                Interlocked.Exchange(ref _received, NewSignal()).TrySetResult();
                if (Hold)
                {
                    await Volatile.Read(ref _release).Task;
                }

                await socket.SendAsync(_response, SocketFlags.None);
                socket.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException)
            {
                // The router closed the connection: nothing to answer.
            }
        }
    }
}
