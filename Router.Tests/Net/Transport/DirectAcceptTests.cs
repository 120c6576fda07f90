using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;
using Router.Net.Transport;
using Router.Net.Transport.Epoll;

namespace Router.Tests.Net.Transport;

/// <summary>
/// A listener whose handler takes epoll connections accepts with accept4 on an epoll loop: the connections it hands
/// over work both ways and carry the client's address; once disposed it accepts nothing more.
/// </summary>
public sealed class DirectAcceptTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [TestCase("127.0.0.1")]
    [TestCase("::1")]
    public async Task AcceptedConnections_CarryTheClientAddress_AndCarryBytesBothWays(string address)
    {
        RequireEpoll();
        var handler = new CollectingHandler();
        await using var listener = new SocketListener(new IPEndPoint(IPAddress.Parse(address), 0), handler, NullLogger.Instance);
        listener.Start();

        using var client = new Socket(listener.EndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.EndPoint);
        var connection = await handler.Accepted.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
        await using var _ = connection;
        connection.Start();

        await client.SendAsync("ping"u8.ToArray());
        var input = connection.Input;
        ReadResult read;
        while (true)
        {
            read = await input.ReadAsync().AsTask().WaitAsync(Timeout);
            if (read.Buffer.Length >= 4 || read.IsCompleted)
            {
                break;
            }

            input.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }

        string received = Encoding.ASCII.GetString(read.Buffer.ToArray());
        input.AdvanceTo(read.Buffer.End);
        await connection.Output.WriteAsync("pong"u8.ToArray());
        var reply = new byte[4];
        int got = 0;
        while (got < reply.Length)
        {
            int n = await client.ReceiveAsync(reply.AsMemory(got)).AsTask().WaitAsync(Timeout);
            Assert.That(n, Is.GreaterThan(0), "the connection closed before answering");
            got += n;
        }

        Assert.Multiple(() =>
        {
            Assert.That(connection, Is.InstanceOf<EpollConnection>());
            Assert.That(Encoding.ASCII.GetString(connection.FormatRemoteAddress()), Is.EqualTo(address));
            Assert.That(received, Is.EqualTo("ping"));
            Assert.That(Encoding.ASCII.GetString(reply), Is.EqualTo("pong"));
        });
    }

    [Test]
    public async Task Disposing_StopsAccepting_AndNewcomersAreRefused()
    {
        RequireEpoll();
        var handler = new CollectingHandler();
        var listener = new SocketListener(new IPEndPoint(IPAddress.Loopback, 0), handler, NullLogger.Instance);
        listener.Start();

        // One accepted connection shows the listener is on its loop.
        using (var first = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await first.ConnectAsync(listener.EndPoint);
            var accepted = await handler.Accepted.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
            accepted.Abort("test done");
            await accepted.DisposeAsync();
        }

        await listener.DisposeAsync().AsTask().WaitAsync(Timeout);

        using var late = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var refused = Assert.ThrowsAsync<SocketException>(async () => await late.ConnectAsync(listener.EndPoint).WaitAsync(Timeout));
        Assert.That(refused!.SocketErrorCode, Is.EqualTo(SocketError.ConnectionRefused));
    }

    private static void RequireEpoll()
    {
        if (!EpollTransport.Enabled)
        {
            Assert.Ignore("the epoll transport runs on Linux x64 only");
        }
    }

    private sealed class CollectingHandler : IConnectionHandler
    {
        public Channel<ITransportConnection> Accepted { get; } = Channel.CreateUnbounded<ITransportConnection>();

        public bool TakesEpollConnections => true;

        public void OnConnection(Socket socket) => throw new AssertionException("an epoll listener handed over a runtime socket");

        public void OnConnection(ITransportConnection connection, Action? closed)
        {
            Accepted.Writer.TryWrite(connection);
            closed?.Invoke();
        }
    }
}
