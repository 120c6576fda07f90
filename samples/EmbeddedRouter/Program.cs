// Embeds the router in a console app: config from code, a request through it, a config swap at run time, a rejected
// config with every error, the router's state, and a graceful stop.
using System.Net;
using System.Net.Sockets;
using System.Text;
using Router.Core.Configuration;
using Router.Net;

// Two tiny upstreams, so there is something to route to.
await using var upstreamA = HelloUpstream.Start("hello from A");
await using var upstreamB = HelloUpstream.Start("hello from B");

// Config from code: everything to upstream A.
var config = new InMemoryConfigSource(RouteEverythingTo(upstreamA.EndPoint));
var options = new RouterServerOptions { Listen = { new IPEndPoint(IPAddress.Loopback, 0) } }.AddSource(config);

await using var router = new RouterServer(options);
await router.StartAsync();
var proxy = router.State.ListenEndPoints[0];
Console.WriteLine($"router listening on http://{proxy}");

using var http = new HttpClient { BaseAddress = new Uri($"http://{proxy}") };
Console.WriteLine($"GET / -> {await http.GetStringAsync("/")}");

// Swap the config at run time: from now on everything goes to upstream B.
var swapped = config.Update(RouteEverythingTo(upstreamB.EndPoint));
Console.WriteLine($"swap: {swapped}");
Console.WriteLine($"GET / -> {await http.GetStringAsync("/")}");

// An invalid config is rejected with every error; the live one keeps serving.
var rejected = router.Apply(new RouterConfig
{
    Routes = [new RouteConfig { Id = "broken", Match = new RouteMatch { PathPrefix = "/" }, Cluster = "nowhere" }],
    Clusters = [new ClusterConfig { Id = "empty" }],
});
Console.WriteLine($"invalid config applied: {rejected.Applied}");
foreach (var error in rejected.Errors)
{
    Console.WriteLine($"  {error.Path}: {error.Message}");
}

var state = router.State;
Console.WriteLine($"state: generation {state.Generation}, source {state.Source}, hash {state.Hash[..12]}, " +
    $"open connections {state.OpenConnections}, last rejection from {state.LastRejection?.Source}");

await router.StopAsync(TimeSpan.FromSeconds(5));
Console.WriteLine("router stopped");

static RouterConfig RouteEverythingTo(IPEndPoint upstream) => new()
{
    Routes = [new RouteConfig { Id = "all", Match = new RouteMatch { PathPrefix = "/" }, Cluster = "app" }],
    Clusters = [new ClusterConfig { Id = "app", Destinations = [new DestinationConfig { Address = upstream.ToString() }] }],
};

/// <summary>A minimal HTTP/1.1 server on loopback that answers every request with a fixed text.</summary>
internal sealed class HelloUpstream : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly byte[] _response;
    private readonly Task _accepting;
    private readonly CancellationTokenSource _stopping = new();

    private HelloUpstream(string text)
    {
        var body = Encoding.UTF8.GetBytes(text);
        _response = [.. Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n"), .. body];
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

    public static HelloUpstream Start(string text) => new(text);

    public async ValueTask DisposeAsync()
    {
        // Cancel first: a loop between two accepts would otherwise meet a stopped listener ("Not listening").
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        await _accepting.ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                return;
            }

            _ = AnswerAsync(socket);
        }
    }

    private async Task AnswerAsync(Socket socket)
    {
        using (socket)
        {
            // Read up to the end of the request head (these requests have no body), then answer and close.
            var buffer = new byte[8192];
            int received = 0;
            while (received < buffer.Length)
            {
                int n = await socket.ReceiveAsync(buffer.AsMemory(received), SocketFlags.None).ConfigureAwait(false);
                if (n == 0)
                {
                    return;
                }

                received += n;
                if (buffer.AsSpan(0, received).IndexOf("\r\n\r\n"u8) >= 0)
                {
                    break;
                }
            }

            await socket.SendAsync(_response, SocketFlags.None).ConfigureAwait(false);
            socket.Shutdown(SocketShutdown.Send);
        }
    }
}
