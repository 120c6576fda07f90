using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Router.Tests.Support;

/// <summary>
/// A raw TCP upstream that records every byte it receives, per connection, and answers each request it can frame
/// (Content-Length or chunked, simply) with a fixed <c>200</c> whose body is "ok". What the router sent is then
/// checked byte for byte: framing headers, smuggled requests, bytes after a rejection.
/// </summary>
internal sealed class RecordingUpstream : IAsyncDisposable
{
    private static readonly byte[] Ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"u8.ToArray();
    private static readonly byte[] OkHead = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"u8.ToArray();

    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private readonly List<Recording> _connections = [];

    public RecordingUpstream()
    {
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _acceptLoop = AcceptAsync();
    }

    public string Address => _listener.LocalEndpoint.ToString()!;

    /// <summary>Connections accepted so far, in order.</summary>
    public IReadOnlyList<Recording> Connections
    {
        get
        {
            lock (_connections)
            {
                return _connections.ToArray();
            }
        }
    }

    /// <summary>Every byte received, connections concatenated in accept order.</summary>
    public byte[] AllReceived => Connections.SelectMany(c => c.Received).ToArray();

    public string AllReceivedText => Encoding.Latin1.GetString(AllReceived);

    /// <summary>Requests framed (and answered) over all connections.</summary>
    public int RequestCount => Connections.Sum(c => c.Requests.Count);

    /// <summary>Request heads framed, in order over all connections.</summary>
    public IReadOnlyList<string> Heads => Connections.SelectMany(c => c.Requests.Select(r => r.Head)).ToArray();

    /// <summary>True once every accepted connection was closed by the router (so the recording is complete).</summary>
    public bool AllClosed => Connections.All(c => c.Closed);

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception)
            {
                return;
            }

            var recording = new Recording();
            lock (_connections)
            {
                _connections.Add(recording);
            }

            _ = Task.Run(() => ServeAsync(socket, recording));
        }
    }

    private static async Task ServeAsync(Socket socket, Recording recording)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                int n = await socket.ReceiveAsync(buffer, SocketFlags.None);
                if (n == 0)
                {
                    break;
                }

                recording.Append(buffer.AsSpan(0, n));
                while (recording.TryFrameNext(out var request))
                {
                    await socket.SendAsync(request.Method == "HEAD" ? OkHead : Ok, SocketFlags.None);
                }
            }
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            recording.Closed = true;
            socket.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _acceptLoop;
        _stop.Dispose();
    }

    /// <summary>One request as the upstream framed it.</summary>
    internal sealed record FramedRequest(string Method, string Head, byte[] Body);

    /// <summary>What one upstream connection received.</summary>
    internal sealed class Recording
    {
        private readonly List<byte> _received = [];
        private readonly List<FramedRequest> _requests = [];
        private int _framed;
        private volatile bool _closed;

        public byte[] Received
        {
            get
            {
                lock (_received)
                {
                    return _received.ToArray();
                }
            }
        }

        public IReadOnlyList<FramedRequest> Requests
        {
            get
            {
                lock (_received)
                {
                    return _requests.ToArray();
                }
            }
        }

        public bool Closed
        {
            get => _closed;
            set => _closed = value;
        }

        public void Append(ReadOnlySpan<byte> bytes)
        {
            lock (_received)
            {
                foreach (var b in bytes)
                {
                    _received.Add(b);
                }
            }
        }

        /// <summary>Frames the next whole request after the last framed one, if it has all arrived.</summary>
        public bool TryFrameNext(out FramedRequest request)
        {
            lock (_received)
            {
                request = null!;
                // A view, not a copy: a long keep-alive recording must not turn each request into a large-object allocation.
                var data = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_received)[_framed..];
                int headEnd = data.IndexOf("\r\n\r\n"u8);
                if (headEnd < 0)
                {
                    return false;
                }

                var head = Encoding.Latin1.GetString(data[..(headEnd + 4)]);
                var lines = head.Split("\r\n");
                var method = lines[0].Split(' ')[0];
                long length = 0;
                bool chunked = false;
                foreach (var line in lines.Skip(1))
                {
                    int colon = line.IndexOf(':', StringComparison.Ordinal);
                    if (colon <= 0)
                    {
                        continue;
                    }

                    var name = line[..colon].Trim();
                    var value = line[(colon + 1)..].Trim();
                    if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                    {
                        length = long.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
                    }
                    else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
                    {
                        chunked = value.EndsWith("chunked", StringComparison.OrdinalIgnoreCase);
                    }
                }

                var rest = data[(headEnd + 4)..];
                int bodyLength;
                if (chunked)
                {
                    bodyLength = ChunkedLength(rest);
                    if (bodyLength < 0)
                    {
                        return false;
                    }
                }
                else
                {
                    if (rest.Length < length)
                    {
                        return false;
                    }

                    bodyLength = (int)length;
                }

                request = new FramedRequest(method, head, rest[..bodyLength].ToArray());
                _requests.Add(request);
                _framed += headEnd + 4 + bodyLength;
                return true;
            }
        }

        /// <summary>Length of a whole chunked body (through the trailers' blank line), or -1 when incomplete.</summary>
        private static int ChunkedLength(ReadOnlySpan<byte> data)
        {
            int pos = 0;
            while (true)
            {
                int lineEnd = data[pos..].IndexOf("\r\n"u8);
                if (lineEnd < 0)
                {
                    return -1;
                }

                var sizeText = Encoding.Latin1.GetString(data.Slice(pos, lineEnd));
                int semicolon = sizeText.IndexOf(';', StringComparison.Ordinal);
                int size = Convert.ToInt32((semicolon >= 0 ? sizeText[..semicolon] : sizeText).Trim(), 16);
                pos += lineEnd + 2;
                if (size == 0)
                {
                    // Trailer lines until the blank one.
                    while (true)
                    {
                        int end = data[pos..].IndexOf("\r\n"u8);
                        if (end < 0)
                        {
                            return -1;
                        }

                        pos += end + 2;
                        if (end == 0)
                        {
                            return pos;
                        }
                    }
                }

                if (data.Length < pos + size + 2)
                {
                    return -1;
                }

                pos += size + 2;
            }
        }
    }
}
