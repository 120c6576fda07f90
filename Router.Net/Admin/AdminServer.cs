using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Router.Net.Hosting;
using Router.Net.Http1;
using Router.Net.Transport;

namespace Router.Net.Admin;

/// <summary>
/// The admin listener: health, readiness, config, reload, clusters and metrics. It uses the same transport and parser
/// as the proxy; it is off the request path, so clarity wins over speed here.
/// </summary>
internal sealed partial class AdminServer : IConnectionHandler, IAsyncDisposable
{
    /// <summary>
    /// Concurrent admin connections served. Probes, scrapers and an operator's curl need a handful; without a cap a
    /// client opening connections in a loop took descriptors and memory without bound.
    /// </summary>
    internal const int MaxConnections = 64;

    // How long a connection over the cap is given to send its request, take the 503 and close.
    private const int RefusalLingerMs = 2000;

    private static readonly byte[] s_overCapAnswer =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 27\r\nCache-Control: no-store\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many admin connections\n"u8.ToArray();

    private readonly SocketListener _listener;
    private readonly AdminEndpoints _endpoints;
    private readonly ILogger _logger;
    private readonly HttpLimits _limits;
    private int _open;
    private int _refusing;
    private long _refused;

    public AdminServer(IPEndPoint endPoint, RouterHost host, ILogger logger)
    {
        _logger = logger;
        _limits = host.Runtime.Limits;
        _endpoints = new AdminEndpoints(host);
        _listener = new SocketListener(endPoint, this, logger);
    }

    public IPEndPoint EndPoint => _listener.EndPoint;

    public void Start() => _listener.Start();

    /// <summary>Connections turned away for being over <see cref="MaxConnections"/> (for metrics).</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Admin connections being served now.</summary>
    // _open briefly counts an over-cap connection before it is turned away; the gauge shows only those served.
    public int OpenConnections => Math.Min(Volatile.Read(ref _open), MaxConnections);

    public void OnConnection(Socket socket)
    {
        if (Interlocked.Increment(ref _open) > MaxConnections)
        {
            Interlocked.Decrement(ref _open);
            Interlocked.Increment(ref _refused);
            _ = RefuseAsync(socket);
            return;
        }

        SocketConnection connection;
        try
        {
            connection = new SocketConnection(socket);
            connection.Start();
        }
        catch
        {
            // The listener closes a socket the handler threw on; its slot is given back here.
            Interlocked.Decrement(ref _open);
            throw;
        }

        _ = ServeAsync(connection);
    }

    /// <summary>
    /// Over the cap: a 503 saying why, then a FIN, rather than pausing accept as the proxy listener does, where a
    /// probe would hang in the backlog until its own timeout with no hint of the cause. The answer waits for the
    /// request to start (sent before it, HTTP clients such as Go's drop it as unsolicited), and what the client sends
    /// meanwhile is drained until it closes, so the answer is not lost to a reset; all within RefusalLingerMs. Under a
    /// flood, with MaxConnections refusals already lingering, further ones are closed at once.
    /// </summary>
    private async Task RefuseAsync(Socket socket)
    {
        try
        {
            if (Interlocked.Increment(ref _refusing) > MaxConnections)
            {
                return;
            }

            var buffer = new byte[1024];
            using var linger = new CancellationTokenSource(RefusalLingerMs);
            if (await socket.ReceiveAsync(buffer, SocketFlags.None, linger.Token).ConfigureAwait(false) == 0)
            {
                return;
            }

            await socket.SendAsync(s_overCapAnswer, SocketFlags.None, linger.Token).ConfigureAwait(false);
            socket.Shutdown(SocketShutdown.Send);
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, linger.Token).ConfigureAwait(false) > 0)
            {
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException)
        {
            // Silent, or gone: nothing more to say to it.
        }
        finally
        {
            Interlocked.Decrement(ref _refusing);
            socket.Dispose();
        }
    }

    private async Task ServeAsync(SocketConnection connection)
    {
        var head = new HttpRequestHead();

        // The proxy's timeouts apply here too (the heartbeat does not watch admin connections): a client that sends
        // no request within the keep-alive timeout, or does not finish its head within the header timeout, is cut,
        // so a stalled scraper or a slow client cannot hold admin connections for ever.
        using var deadline = new Timer(static state => ((SocketConnection)state!).Abort("admin: timeout"), connection, Timeout.Infinite, Timeout.Infinite);
        try
        {
            while (true)
            {
                var input = connection.Input;
                try
                {
                    deadline.Change(_limits.KeepAliveTimeout, Timeout.InfiniteTimeSpan);
                    var first = await input.ReadAsync().ConfigureAwait(false);
                    input.AdvanceTo(first.Buffer.Start);
                    if (first.Buffer.IsEmpty && first.IsCompleted)
                    {
                        return;
                    }

                    deadline.Change(_limits.HeaderTimeout, Timeout.InfiniteTimeSpan);
                    if (!await RequestHeadReader.ReadAsync(input, head, HttpLimits.Default).ConfigureAwait(false))
                    {
                        return;
                    }

                    deadline.Change(Timeout.Infinite, Timeout.Infinite);
                }
                catch (Http1Exception ex)
                {
                    await WriteAsync(connection.Output, new AdminResponse(ex.StatusCode, "text/plain", ex.Message + "\n"), close: true).ConfigureAwait(false);
                    return;
                }

                // Admin requests carry no meaningful body; skip it so keep-alive stays in sync.
                if (await RequestHeadReader.SkipBodyAsync(input, head).ConfigureAwait(false) < 0)
                {
                    return;
                }

                bool close = !head.KeepAlive;
                var method = Encoding.ASCII.GetString(head[head.MethodToken]);
                var path = Encoding.ASCII.GetString(head[head.Path]);
                AdminResponse response;
                try
                {
                    response = _endpoints.Handle(method, path);
                }
                catch (Exception ex)
                {
                    LogEndpointFailed(_logger, path, ex);
                    response = new AdminResponse(500, "text/plain", "internal error\n");
                }

                await WriteAsync(connection.Output, response, close).ConfigureAwait(false);
                head.Release();
                if (close)
                {
                    return;
                }
            }
        }
        catch (IOException)
        {
        }
        finally
        {
            head.Release();
            try
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Decrement(ref _open);
            }
        }
    }

    private static async ValueTask WriteAsync(PipeWriter output, AdminResponse response, bool close)
    {
        var body = Encoding.UTF8.GetBytes(response.Body);
        var head = $"HTTP/1.1 {response.Status} {Encoding.ASCII.GetString(Forwarding.HeadWriter.ReasonPhrase(response.Status))}\r\n" +
                   $"Content-Type: {response.ContentType}\r\nContent-Length: {body.Length}\r\nCache-Control: no-store\r\n" +
                   (response.Allow is null ? "" : $"Allow: {response.Allow}\r\n") +
                   (close ? "Connection: close\r\n" : "") + "\r\n";
        output.Write(Encoding.ASCII.GetBytes(head));
        output.Write(body);
        await output.FlushAsync().ConfigureAwait(false);
    }

    public ValueTask DisposeAsync() => _listener.DisposeAsync();

    [LoggerMessage(EventId = 400, Level = LogLevel.Error, Message = "Admin endpoint {Path} failed")]
    private static partial void LogEndpointFailed(ILogger logger, string path, Exception ex);
}

/// <summary>A response from an admin endpoint.</summary>
internal sealed record AdminResponse(int Status, string ContentType, string Body)
{
    /// <summary>The methods a 405 allows (RFC 9110 §15.5.6: the Allow header is required on it).</summary>
    public string? Allow { get; init; }
}
