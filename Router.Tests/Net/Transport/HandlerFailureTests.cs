using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;
using Router.Core.Routing;
using Router.Net.Forwarding;
using Router.Net.Http1;
using Router.Net.Transport;
using Router.Net.Transport.Epoll;

namespace Router.Tests.Net.Transport;

/// <summary>
/// A connection handler that throws has not taken the connection: the listener closes it and gives its
/// <see cref="ConnectionGate"/> slot back. Before, the slot leaked, so at a cap of one a single failure stopped the
/// listener from ever accepting again.
/// </summary>
public sealed class HandlerFailureTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [TestCase(false, TestName = "HandlerThrows_SlotComesBack_AndTheClientIsClosed(runtime accept)")]
    [TestCase(true, TestName = "HandlerThrows_SlotComesBack_AndTheClientIsClosed(accept4)")]
    public async Task HandlerThrows_SlotComesBack_AndTheClientIsClosed(bool epoll)
    {
        if (epoll && !EpollTransport.Enabled)
        {
            Assert.Ignore("the epoll transport runs on Linux x64 only");
        }

        var handler = new FailFirstHandler(epoll);
        var gate = new ConnectionGate(1);
        await using var listener = new SocketListener(new IPEndPoint(IPAddress.Loopback, 0), handler, NullLogger.Instance, gate);
        listener.Start();

        // The refused connection is closed, not left open with nobody serving it. The reset can reach the client
        // before its own connect has reported success, so a reset anywhere here counts as closed.
        using var first = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var buffer = new byte[1];
        int read;
        try
        {
            await first.ConnectAsync(listener.EndPoint);
            await handler.Failed.Task.WaitAsync(Timeout);
            read = await first.ReceiveAsync(buffer.AsMemory()).AsTask().WaitAsync(Timeout);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            read = 0;
        }

        await handler.Failed.Task.WaitAsync(Timeout);

        Assert.That(read, Is.Zero, "the connection the handler failed on was not closed");

        // With the only slot leaked this second connection would wait in the backlog for ever.
        using var second = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await second.ConnectAsync(listener.EndPoint);
        var taken = await handler.Taken.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
        Assert.That(taken, Is.EqualTo(2), "the listener stopped handing over connections after a handler failure");
        handler.CloseAll();
    }

    [Test]
    public async Task ProxyConnectionThatCannotStart_ClosesItsTransport_AndCallsClosed()
    {
        using var heartbeat = new Heartbeat(TimeSpan.FromSeconds(1));
        var runtime = new ProxyRuntime(new RoutingTable(), new HttpLimits(), heartbeat, NullLoggerFactory.Instance);
        var transport = new UnstartableTransport();
        int closed = 0;
        var proxy = new ProxyConnection(runtime, transport, https: false, () => Interlocked.Increment(ref closed));

        Task run = proxy.RunAsync();
        await run.WaitAsync(Timeout);

        Assert.Multiple(() =>
        {
            Assert.That(closed, Is.EqualTo(1), "the listener's slot never came back");
            Assert.That(transport.Aborted, Is.True);
            Assert.That(transport.Disposed, Is.True);
        });
    }

    /// <summary>A transport whose registration fails, as an epoll registration can when the kernel refuses it.</summary>
    private sealed class UnstartableTransport : ITransportConnection
    {
        private readonly Pipe _input = new();
        private readonly Pipe _output = new();

        public bool Aborted { get; private set; }

        public bool Disposed { get; private set; }

        public PipeReader Input => _input.Reader;

        public PipeWriter Output => _output.Writer;

        public EndPoint? RemoteEndPoint => new IPEndPoint(IPAddress.Loopback, 1);

        public bool IsClosed => Aborted;

        public string? CloseReason => null;

        public bool EndedByReset => false;

        public int ReceiveThread => 0;

        public byte[] FormatRemoteAddress() => "127.0.0.1"u8.ToArray();

        public bool IsIdleClean() => false;

        public ValueTask<int> WaitForInputAsync() => default;

        public void Start() => throw new SocketException((int)SocketError.NoBufferSpaceAvailable);

        public void Abort(string reason) => Aborted = true;

        public ValueTask DisposeAsync()
        {
            Disposed = true;
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>Throws on the first connection; takes the later ones and holds their slots until <see cref="CloseAll"/>.</summary>
    private sealed class FailFirstHandler(bool epoll) : IConnectionHandler
    {
        private readonly List<(IDisposable? Socket, ITransportConnection? Connection, Action? Closed)> _held = [];
        private int _count;

        public TaskCompletionSource Failed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Channel<int> Taken { get; } = Channel.CreateUnbounded<int>();

        public bool TakesEpollConnections => epoll;

        public void OnConnection(Socket socket) => throw new AssertionException("a gated listener called the ungated overload");

        public void OnConnection(Socket socket, Action closed) => Take(socket, null, closed);

        public void OnConnection(ITransportConnection connection, Action? closed) => Take(null, connection, closed);

        public void CloseAll()
        {
            lock (_held)
            {
                foreach (var (socket, connection, closed) in _held)
                {
                    socket?.Dispose();
                    connection?.Abort("test done");
                    closed?.Invoke();
                }

                _held.Clear();
            }
        }

        private void Take(IDisposable? socket, ITransportConnection? connection, Action? closed)
        {
            int n = Interlocked.Increment(ref _count);
            if (n == 1)
            {
                Failed.TrySetResult();
                throw new InvalidOperationException("handler failure for the test");
            }

            lock (_held)
            {
                _held.Add((socket, connection, closed));
            }

            Taken.Writer.TryWrite(n);
        }
    }
}
