using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Router.Tests.Net.Tls;

/// <summary>A keep-alive HTTPS client on one TLS connection, so tests control which connection a request uses.</summary>
internal sealed class TlsTestClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly SslStream _stream;
    private readonly byte[] _buffer = new byte[16 * 1024];
    private int _start;
    private int _end;

    private TlsTestClient(Socket socket, SslStream stream)
    {
        _socket = socket;
        _stream = stream;
    }

    public X509Certificate2 ServerCertificate => new(_stream.RemoteCertificate!);

    public SslProtocols Protocol => _stream.SslProtocol;

    public SslApplicationProtocol ApplicationProtocol => _stream.NegotiatedApplicationProtocol;

    public static async Task<TlsTestClient> ConnectAsync(IPEndPoint endPoint, string? serverName, SslProtocols protocols = SslProtocols.None)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(endPoint);
        var stream = new SslStream(new NetworkStream(socket, ownsSocket: true));
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await stream.AuthenticateAsClientAsync(
                new SslClientAuthenticationOptions
                {
                    TargetHost = serverName ?? "",
                    EnabledSslProtocols = protocols,
                    ApplicationProtocols = [SslApplicationProtocol.Http11],
                    // The tests assert which certificate came back; trust is not what they check.
#pragma warning disable CA5359
                    RemoteCertificateValidationCallback = static (_, _, _, _) => true,
#pragma warning restore CA5359
                },
                timeout.Token);
        }
        catch
        {
            await stream.DisposeAsync();
            throw;
        }

        return new TlsTestClient(socket, stream);
    }

    public async Task<(int Status, string Head, string Body)> GetAsync(string path, string host = "localhost")
    {
        await _stream.WriteAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        await _stream.FlushAsync();
        string head = await ReadHeadAsync();
        int status = int.Parse(head.AsSpan(9, 3), provider: null);
        string body;
        var lengthLine = head.Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
        if (lengthLine is not null)
        {
            body = Encoding.UTF8.GetString(await ReadExactAsync(int.Parse(lengthLine[15..].Trim(), provider: null)));
        }
        else
        {
            // Chunked: read chunk by chunk.
            var text = new StringBuilder();
            while (true)
            {
                int size = Convert.ToInt32((await ReadLineAsync()).Split(';')[0], 16);
                if (size == 0)
                {
                    await ReadLineAsync();
                    break;
                }

                text.Append(Encoding.UTF8.GetString(await ReadExactAsync(size)));
                await ReadLineAsync();
            }

            body = text.ToString();
        }

        return (status, head, body);
    }

    private async Task<string> ReadHeadAsync()
    {
        var head = new StringBuilder();
        while (true)
        {
            string line = await ReadLineAsync();
            if (line.Length == 0)
            {
                return head.ToString();
            }

            head.Append(line).Append("\r\n");
        }
    }

    private async Task<string> ReadLineAsync()
    {
        var line = new StringBuilder();
        while (true)
        {
            if (_start == _end)
            {
                await FillAsync();
            }

            char c = (char)_buffer[_start++];
            if (c == '\n')
            {
                return line.ToString().TrimEnd('\r');
            }

            line.Append(c);
        }
    }

    private async Task<byte[]> ReadExactAsync(int count)
    {
        var result = new byte[count];
        int filled = 0;
        while (filled < count)
        {
            if (_start == _end)
            {
                await FillAsync();
            }

            int n = Math.Min(count - filled, _end - _start);
            Array.Copy(_buffer, _start, result, filled, n);
            _start += n;
            filled += n;
        }

        return result;
    }

    private async Task FillAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        int n = await _stream.ReadAsync(_buffer, timeout.Token);
        if (n == 0)
        {
            throw new IOException("server closed the connection");
        }

        _start = 0;
        _end = n;
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _socket.Dispose();
    }
}
