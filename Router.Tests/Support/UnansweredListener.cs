using System.Net;
using System.Net.Sockets;

namespace Router.Tests.Support;

/// <summary>
/// A loopback address where a connect never completes, as with a destination whose host is gone: a listener that
/// never accepts, with a backlog of 0 (one queued connection on Linux) already taken, so the kernel drops every further
/// SYN and a connect waits until the connecting side gives up.
/// </summary>
internal sealed class UnansweredListener : IDisposable
{
    private readonly Socket _listener;
    private readonly Socket _filler;

    private UnansweredListener(Socket listener, Socket filler)
    {
        _listener = listener;
        _filler = filler;
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    public string Address => EndPoint.ToString();

    public static async Task<UnansweredListener> StartAsync()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(0);
        var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await filler.ConnectAsync(listener.LocalEndPoint!).WaitAsync(TimeSpan.FromSeconds(10));
        return new UnansweredListener(listener, filler);
    }

    public void Dispose()
    {
        _filler.Dispose();
        _listener.Dispose();
    }
}
