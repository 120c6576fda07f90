using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Router.Net.Http1;
using Router.Net.Transport;

namespace Router.Net.Demo;

/// <summary>
/// A small in-process HTTP server for <c>--demo</c>: answers every request with its name, method and path, so a
/// user can see which upstream served them. Built on the router's own transport and parser.
/// </summary>
internal sealed class DemoUpstream : IConnectionHandler, IAsyncDisposable
{
    private readonly string _name;
    private readonly SocketListener _listener;

    public DemoUpstream(string name, IPEndPoint endPoint, ILogger logger)
    {
        _name = name;
        _listener = new SocketListener(endPoint, this, logger);
        _listener.Start();
    }

    public IPEndPoint EndPoint => _listener.EndPoint;

    public void OnConnection(Socket socket)
    {
        var connection = new SocketConnection(socket);
        connection.Start();
        _ = ServeAsync(connection);
    }

    private async Task ServeAsync(SocketConnection connection)
    {
        var head = new HttpRequestHead();
        var input = connection.Input;
        try
        {
            while (true)
            {
                if (!await RequestHeadReader.ReadAsync(input, head, HttpLimits.Default).ConfigureAwait(false))
                {
                    return;
                }

                long bodyBytes = await RequestHeadReader.SkipBodyAsync(input, head).ConfigureAwait(false);
                if (bodyBytes < 0)
                {
                    return;
                }

                string text = $"Hello from demo upstream {_name}: {Encoding.ASCII.GetString(head[head.MethodToken])} " +
                              $"{Encoding.ASCII.GetString(head[head.Target])} (host {Encoding.ASCII.GetString(head[head.Host])}, body {bodyBytes} bytes)\n";
                var body = Encoding.UTF8.GetBytes(text);
                bool close = !head.KeepAlive;
                var response = $"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body.Length}\r\nX-Upstream: {_name}\r\n" +
                               (close ? "Connection: close\r\n" : "") + "\r\n";
                connection.Output.Write(Encoding.ASCII.GetBytes(response));
                if (head.Method != Http1.HttpMethod.Head)
                {
                    connection.Output.Write(body);
                }

                await connection.Output.FlushAsync().ConfigureAwait(false);
                head.Release();
                if (close)
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or Http1Exception)
        {
        }
        finally
        {
            head.Release();
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    public ValueTask DisposeAsync() => _listener.DisposeAsync();
}
