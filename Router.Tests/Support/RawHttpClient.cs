using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Router.Tests.Support;

/// <summary>A response as read off the wire by <see cref="RawHttpClient"/>.</summary>
internal sealed record RawResponse(int StatusCode, string Head, IReadOnlyList<KeyValuePair<string, string>> Headers, byte[] Body)
{
    public string BodyText => Encoding.UTF8.GetString(Body);

    public string? Header(string name) =>
        Headers.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value;
}

/// <summary>
/// A raw TCP HTTP/1.1 client: sends exactly the bytes a test gives and reads responses byte by byte off the socket,
/// so tests see framing, pipelining and connection closes as a client would.
/// </summary>
internal sealed class RawHttpClient : IDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;

    private RawHttpClient(Socket socket)
    {
        _socket = socket;
    }

    public static async Task<RawHttpClient> ConnectAsync(IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(endPoint);
        return new RawHttpClient(socket);
    }

    public Socket Socket => _socket;

    public Task SendAsync(string text) => SendAsync(Encoding.ASCII.GetBytes(text));

    public async Task SendAsync(ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            int sent = await _socket.SendAsync(bytes, SocketFlags.None);
            bytes = bytes[sent..];
        }
    }

    /// <summary>Reads one response. <paramref name="headRequest"/>: the request was HEAD (no body follows).</summary>
    public async Task<RawResponse> ReadResponseAsync(bool headRequest = false, CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        var token = timeout.Token;
        string head = await ReadLineBlockAsync(token);
        var lines = head.Split("\r\n");
        int status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = new List<KeyValuePair<string, string>>();
        foreach (var line in lines.Skip(1))
        {
            if (line.Length == 0)
            {
                continue;
            }

            int colon = line.IndexOf(':', StringComparison.Ordinal);
            headers.Add(new(line[..colon], line[(colon + 1)..].Trim()));
        }

        string? Get(string name) => headers.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value;
        byte[] body;
        if (headRequest || status is 204 or 304 || status is >= 100 and < 200)
        {
            body = [];
        }
        else if (Get("Transfer-Encoding") is { } codings && codings.Split(',')[^1].Trim().Equals("chunked", StringComparison.OrdinalIgnoreCase))
        {
            using var ms = new MemoryStream();
            while (true)
            {
                string sizeLine = await ReadLineAsync(token);
                int semicolon = sizeLine.IndexOf(';', StringComparison.Ordinal);
                int size = Convert.ToInt32(semicolon >= 0 ? sizeLine[..semicolon] : sizeLine, 16);
                if (size == 0)
                {
                    while ((await ReadLineAsync(token)).Length > 0)
                    {
                    }

                    break;
                }

                ms.Write(await ReadExactAsync(size, token));
                await ReadLineAsync(token);
            }

            body = ms.ToArray();
        }
        else if (Get("Content-Length") is { } length)
        {
            body = await ReadExactAsync(int.Parse(length, System.Globalization.CultureInfo.InvariantCulture), token);
        }
        else
        {
            body = await ReadToEndAsync(token);
        }

        return new RawResponse(status, head, headers, body);
    }

    /// <summary>True when the server closed the connection (EOF or reset) within the timeout.</summary>
    public async Task<bool> IsClosedByServerAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            if (_end > _start)
            {
                return false;
            }

            int n = await _socket.ReceiveAsync(_buffer.AsMemory(), SocketFlags.None, cts.Token);
            if (n == 0)
            {
                return true;
            }

            _start = 0;
            _end = n;
            return false;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (SocketException)
        {
            return true;
        }
    }

    public async Task<byte[]> ReadToEndAsync(CancellationToken token = default)
    {
        using var ms = new MemoryStream();
        ms.Write(_buffer, _start, _end - _start);
        _start = _end = 0;
        while (true)
        {
            int n;
            try
            {
                n = await _socket.ReceiveAsync(_buffer.AsMemory(), SocketFlags.None, token);
            }
            catch (SocketException)
            {
                break;
            }

            if (n == 0)
            {
                break;
            }

            ms.Write(_buffer, 0, n);
        }

        return ms.ToArray();
    }

    private async Task<string> ReadLineBlockAsync(CancellationToken token)
    {
        var sb = new StringBuilder();
        while (true)
        {
            string line = await ReadLineAsync(token);
            if (line.Length == 0)
            {
                return sb.ToString();
            }

            sb.Append(line).Append("\r\n");
        }
    }

    private async Task<string> ReadLineAsync(CancellationToken token)
    {
        var sb = new StringBuilder();
        while (true)
        {
            if (_start == _end)
            {
                await FillAsync(token);
            }

            byte b = _buffer[_start++];
            if (b == '\n')
            {
                if (sb.Length > 0 && sb[^1] == '\r')
                {
                    sb.Length--;
                }

                return sb.ToString();
            }

            sb.Append((char)b);
        }
    }

    private async Task<byte[]> ReadExactAsync(int count, CancellationToken token)
    {
        var result = new byte[count];
        int filled = 0;
        while (filled < count)
        {
            if (_start == _end)
            {
                await FillAsync(token);
            }

            int take = Math.Min(count - filled, _end - _start);
            Buffer.BlockCopy(_buffer, _start, result, filled, take);
            _start += take;
            filled += take;
        }

        return result;
    }

    private async Task FillAsync(CancellationToken token)
    {
        int n = await _socket.ReceiveAsync(_buffer.AsMemory(), SocketFlags.None, token);
        if (n == 0)
        {
            throw new EndOfStreamException("server closed the connection");
        }

        _start = 0;
        _end = n;
    }

    public void Dispose() => _socket.Dispose();
}
