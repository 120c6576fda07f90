using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using NUnit.Framework;
using Router.Net.Transport;
using Router.Net.Transport.Epoll;
using Router.Tests.Net.Http1;
using Router.Tests.Support;

namespace Router.Tests.Net.Transport;

/// <summary>
/// The plain-socket transports over real loopback sockets, seen from a raw peer socket: the runtime-socket connection
/// with its input pipe or its on-demand reader (<see cref="SocketReader"/>), and our epoll connection
/// (<see cref="EpollConnection"/>); both write through <see cref="SocketWriter"/>.
/// </summary>
public sealed class SocketTransportTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private static readonly string[] Pipelined = ["first", "second", "third"];

    public enum Kind
    {
        /// <summary>Runtime sockets, input pipe and receive loop (upstream connections without epoll).</summary>
        SocketPipe,

        /// <summary>Runtime sockets, on-demand reader (client connections without epoll).</summary>
        SocketDirect,

        /// <summary>Our epoll loop (plain connections on Linux x64).</summary>
        Epoll,
    }

    [TestCase(Kind.SocketPipe)]
    [TestCase(Kind.SocketDirect)]
    [TestCase(Kind.Epoll)]
    public async Task Reader_SeesEveryByteInOrder_WhenThePeerWritesInSmallPieces_ThenItsClose(Kind kind)
    {
        var (peer, connection) = await PairAsync(kind);
        await using var _ = connection;
        using var __ = peer;
        var message = RandomNumberGenerator.GetBytes(40_000);
        var send = Task.Run(async () =>
        {
            for (int i = 0; i < message.Length; i += 700)
            {
                await peer.SendAsync(message.AsMemory(i, Math.Min(700, message.Length - i)));
            }

            peer.Shutdown(SocketShutdown.Send);
        });

        // Examine everything, consume nothing, until it all arrived: the reader must grow past its 4 KiB start.
        var input = connection.Input;
        ReadResult result;
        while (true)
        {
            result = await input.ReadAsync().AsTask().WaitAsync(Timeout);
            if (result.IsCompleted)
            {
                break;
            }

            input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }

        await send;
        Assert.That(result.Buffer.ToArray(), Is.EqualTo(message));

        // The pipe's receive loop ends just after the reader saw the end; the direct reader knows at once.
        Assert.That(await Eventually.TrueAsync(() => connection.IsClosed, Timeout), Is.True, "the peer's FIN is seen as closed");
        Assert.Multiple(() =>
        {
            Assert.That(connection.CloseReason, Is.EqualTo("peer closed"));
        });
        input.AdvanceTo(result.Buffer.End);
    }

    [TestCase(Kind.SocketDirect)]
    [TestCase(Kind.Epoll)]
    public async Task Reader_HandsOutPipelinedMessagesOneByOne_WithoutWaitingForMoreData(Kind kind)
    {
        var (peer, connection) = await PairAsync(kind);
        await using var _ = connection;
        using var __ = peer;
        await peer.SendAsync("first|second|third|"u8.ToArray());
        var input = connection.Input;
        var seen = new List<string>();
        while (seen.Count < 3)
        {
            var result = await input.ReadAsync().AsTask().WaitAsync(Timeout);
            var buffer = result.Buffer;
            var end = buffer.PositionOf((byte)'|');
            if (end is null)
            {
                input.AdvanceTo(buffer.Start, buffer.End);
                continue;
            }

            seen.Add(System.Text.Encoding.ASCII.GetString(buffer.Slice(0, end.Value).ToArray()));
            input.AdvanceTo(buffer.GetPosition(1, end.Value));
        }

        Assert.That(seen, Is.EqualTo(Pipelined));
    }

    [TestCase(Kind.SocketDirect)]
    [TestCase(Kind.Epoll)]
    public async Task CancelPendingRead_WakesAWaitingReader_AndTheConnectionCanStillAnswer(Kind kind)
    {
        var (peer, connection) = await PairAsync(kind);
        await using var _ = connection;
        using var __ = peer;
        var pending = connection.Input.ReadAsync().AsTask();
        Assert.That(pending.IsCompleted, Is.False, "nothing was sent, so the read waits");

        connection.Input.CancelPendingRead();
        var result = await pending.WaitAsync(Timeout);
        Assert.That(result.IsCanceled, Is.True);

        // What a head timeout does next: answer and close.
        connection.Output.Write("HTTP/1.1 408 Request Timeout\r\n\r\n"u8);
        var flush = await connection.Output.FlushAsync();
        Assert.That(flush.IsCompleted, Is.False, "the send side is still open");
        await connection.DisposeAsync();
        Assert.That(await ReceiveAllAsync(peer), Is.EqualTo("HTTP/1.1 408 Request Timeout\r\n\r\n"u8.ToArray()));
    }

    [TestCase(Kind.SocketDirect)]
    [TestCase(Kind.Epoll)]
    public async Task Writer_FlushWaitsWhileThePeerDoesNotRead_ThenEveryByteArrivesInOrder(Kind kind)
    {
        var (peer, connection) = await PairAsync(kind);
        await using var _ = connection;
        using var __ = peer;
        peer.ReceiveBufferSize = 64 * 1024;
        var payload = RandomNumberGenerator.GetBytes(16 * 1024 * 1024);

        var blocked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var writes = Task.Run(async () =>
        {
            for (int i = 0; i < payload.Length; i += 64 * 1024)
            {
                connection.Output.Write(payload.AsSpan(i, 64 * 1024));
                var flush = connection.Output.FlushAsync();
                if (!flush.IsCompleted)
                {
                    blocked.TrySetResult();
                }

                Assert.That((await flush).IsCompleted, Is.False);
            }

            await connection.Output.CompleteAsync();
        });

        // The peer reads nothing until a flush had to wait on the kernel (16 MiB cannot fit in the socket buffers).
        await blocked.Task.WaitAsync(Timeout);
        var received = await ReceiveAllAsync(peer);
        await writes.WaitAsync(Timeout);
        Assert.That(received.AsSpan().SequenceEqual(payload), Is.True);
    }

    [TestCase(Kind.SocketDirect)]
    [TestCase(Kind.Epoll)]
    public async Task Writer_SendsAMultiSegmentBodyUncopied_BehindWhatWasWrittenBeforeIt(Kind kind)
    {
        var (peer, connection) = await PairAsync(kind);
        await using var _ = connection;
        using var __ = peer;
        var writer = (SocketWriter)connection.Output;
        var payload = RandomNumberGenerator.GetBytes(90_001);
        var body = TestInput.Split(payload, 20_000, 20_001); // three segments: 20,000 B, 1 B, 70,000 B

        writer.Write("HEAD\r\n"u8);
        Assert.That(await writer.SendAsync(body).AsTask().WaitAsync(Timeout), Is.True);
        await connection.Output.CompleteAsync();

        var expected = "HEAD\r\n"u8.ToArray().Concat(payload).ToArray();
        Assert.That(await ReceiveAllAsync(peer), Is.EqualTo(expected));
    }

    [TestCase(Kind.SocketDirect)]
    [TestCase(Kind.Epoll)]
    public async Task Writer_WhenThePeerResets_FlushReportsTheConnectionGoneInsteadOfThrowing(Kind kind)
    {
        var (peer, connection) = await PairAsync(kind);
        await using var _ = connection;
        peer.LingerState = new LingerOption(true, 0);
        peer.Close(); // RST

        // The first sends after a reset may still be taken by the kernel; one of the next must fail.
        var deadline = DateTime.UtcNow + Timeout;
        FlushResult flush;
        do
        {
            connection.Output.Write(new byte[32 * 1024]);
            flush = await connection.Output.FlushAsync();
        }
        while (!flush.IsCompleted && DateTime.UtcNow < deadline);

        Assert.That(flush.IsCompleted, Is.True, "a flush after the reset reports the connection gone");
        Assert.Multiple(() =>
        {
            Assert.That(connection.IsClosed, Is.True);
            Assert.That(connection.CloseReason, Does.StartWith("send: "));
        });
    }

    [TestCase(Kind.SocketDirect)]
    [TestCase(Kind.Epoll)]
    public async Task AfterAnAbort_CancellingTheReadAndCompletingTheWriter_DoNotThrow(Kind kind)
    {
        // The heartbeat or a failed send can abort a connection while the request path is about to cancel its read
        // or finish its output: shutting down a socket that is already closed must be a no-op, not an exception.
        var (peer, connection) = await PairAsync(kind);
        await using var _ = connection;
        using var __ = peer;
        connection.Abort("test abort");

        Assert.Multiple(() =>
        {
            Assert.DoesNotThrow(() => connection.Input.CancelPendingRead());
            Assert.DoesNotThrow(() => connection.ShutdownSend());
            Assert.That(connection.IsClosed, Is.True);
            Assert.That(connection.CloseReason, Is.EqualTo("test abort"));
        });
    }

    [TestCase("127.0.0.1")]
    [TestCase("::1")]
    public async Task EpollConnect_ToAClosedPort_IsRefused_AndToAListener_CarriesBytesBothWays(string address)
    {
        if (!EpollTransport.Enabled)
        {
            Assert.Ignore("the epoll transport runs on Linux x64 only");
        }

        var loopback = IPAddress.Parse(address);
        using var closed = new Socket(loopback.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        closed.Bind(new IPEndPoint(loopback, 0));
        var closedEndPoint = (IPEndPoint)closed.LocalEndPoint!;
        closed.Close(); // bound once, now nobody listens there
        var refused = Assert.ThrowsAsync<SocketException>(async () =>
            await EpollConnection.ConnectAsync(closedEndPoint, 5000, EpollTransport.LoopForConnect()));
        Assert.That(refused!.SocketErrorCode, Is.EqualTo(SocketError.ConnectionRefused));

        using var listener = new Socket(loopback.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(loopback, 0));
        listener.Listen();
        var accept = listener.AcceptAsync();
        await using var connection = await EpollConnection.ConnectAsync((IPEndPoint)listener.LocalEndPoint!, 5000, EpollTransport.LoopForConnect());
        using var peer = await accept.WaitAsync(Timeout);
        Assert.That(Encoding.ASCII.GetString(connection.FormatRemoteAddress()), Is.EqualTo(address));

        connection.Output.Write("ping"u8);
        await connection.Output.FlushAsync();
        var buffer = new byte[4];
        Assert.That(await peer.ReceiveAsync(buffer.AsMemory()).AsTask().WaitAsync(Timeout), Is.EqualTo(4));
        await peer.SendAsync("pong"u8.ToArray());
        var result = await connection.Input.ReadAsync().AsTask().WaitAsync(Timeout);
        Assert.That(System.Text.Encoding.ASCII.GetString(result.Buffer.ToArray()), Is.EqualTo("pong"));
        connection.Input.AdvanceTo(result.Buffer.End);
    }

    [Test]
    public async Task EpollConnect_ThatGetsNoAnswer_TimesOutAfterItsConnectTimeout_AndAConnectThatFinished_IsLeftAlone()
    {
        if (!EpollTransport.Enabled)
        {
            Assert.Ignore("the epoll transport runs on Linux x64 only");
        }

        // Both on one loop: the timed-out connect's deadline comes after the first one's, so the first connection
        // has been through the moment its own connect would have timed out.
        var loop = EpollTransport.LoopForConnect();
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var accept = listener.AcceptAsync();
        await using var connected = await EpollConnection.ConnectAsync((IPEndPoint)listener.LocalEndPoint!, 100, loop);
        using var peer = await accept.WaitAsync(Timeout);
        using var unanswered = await UnansweredListener.StartAsync();

        var watch = System.Diagnostics.Stopwatch.StartNew();
        var connect = EpollConnection.ConnectAsync(unanswered.EndPoint, 300, loop).AsTask();
        Assert.That(await Task.WhenAny(connect, Task.Delay(Timeout)), Is.SameAs(connect), "the connect ended");
        var elapsed = watch.Elapsed;
        Assert.ThrowsAsync<TimeoutException>(() => connect);

        TestContext.Out.WriteLine($"timed out after {elapsed.TotalMilliseconds:F0} ms");
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(300)), "not before the connect timeout");
        Assert.That(elapsed, Is.LessThan(TimeSpan.FromSeconds(3)), "at the connect timeout, not at the kernel's SYN retries");
        Assert.That(connected.IsClosed, Is.False, "the connection whose connect finished in time is still open");
        connected.Output.Write("ping"u8);
        await connected.Output.FlushAsync();
        var buffer = new byte[4];
        Assert.That(await peer.ReceiveAsync(buffer.AsMemory()).AsTask().WaitAsync(Timeout), Is.EqualTo(4));
    }

    [Test]
    public async Task EpollIdleConnection_IsCleanWhileQuiet_NotAfterUnaskedBytes_NorAfterThePeerCloses()
    {
        var (peer, accepted) = await PairAsync(Kind.Epoll);
        await using var _ = accepted;
        using var __ = peer;
        var connection = (EpollConnection)accepted;
        await peer.SendAsync("request"u8.ToArray());
        var result = await connection.Input.ReadAsync().AsTask().WaitAsync(Timeout);
        connection.Input.AdvanceTo(result.Buffer.End);
        Assert.That(connection.IsIdleClean(), Is.True, "nothing arrived since the last read");

        await peer.SendAsync("unasked"u8.ToArray());
        Assert.That(await Eventually.TrueAsync(() => !connection.IsIdleClean(), Timeout), Is.True, "bytes nobody asked for");

        var (peer2, accepted2) = await PairAsync(Kind.Epoll);
        await using var ___ = accepted2;
        var quiet = (EpollConnection)accepted2;
        Assert.That(quiet.IsIdleClean(), Is.True);
        peer2.Shutdown(SocketShutdown.Send);
        peer2.Dispose();
        Assert.That(await Eventually.TrueAsync(() => quiet.IsClosed && !quiet.IsIdleClean(), Timeout), Is.True, "the peer's FIN, seen without reading");
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task EpollIdleConnection_SeesBytesOrAFinAlreadyInTheKernel_BeforeItsLoopCountedTheirEdge(bool sendsBytes)
    {
        if (!EpollTransport.Enabled)
        {
            Assert.Ignore("the epoll transport runs on Linux x64 only");
        }

        // The check runs on the connection's own loop thread, in the middle of handling an edge, as a request served
        // there rents a pooled connection: the loop cannot have counted the edge for what the peer just sent.
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await peer.ConnectAsync(listener.LocalEndPoint!);
        await using var connection = EpollTransport.Accept(listener.SafeHandle, out int errno) ?? throw new SocketException(errno);
        var clean = new TaskCompletionSource<(bool Before, bool After)>(TaskCreationOptions.RunContinuationsAsynchronously);
        connection.StartOnLoop(
            _ =>
            {
                bool before = connection.IsIdleClean();
                if (sendsBytes)
                {
                    peer.Send("unasked"u8); // loopback: in the connection's receive queue when this returns
                }
                else
                {
                    peer.Shutdown(SocketShutdown.Send);
                }

                clean.SetResult((before, connection.IsIdleClean()));
            },
            connection);
        var (quiet, afterPeer) = await clean.Task.WaitAsync(Timeout);
        Assert.That(quiet, Is.True, "nothing arrived yet");
        Assert.That(afterPeer, Is.False, sendsBytes ? "bytes nobody asked for" : "the peer's FIN");
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task SocketPipeIdleConnection_SeesBytesOrAFinAlreadyInTheKernel_BeforeItsReceiveLoopTookThem(bool sendsBytes)
    {
        var (peer, connection) = await PairAsync(Kind.SocketPipe);
        await using var _ = connection;
        using var __ = peer;
        Assert.That(connection.IsIdleClean(), Is.True, "nothing arrived yet");
        if (sendsBytes)
        {
            peer.Send("unasked"u8); // loopback: in the connection's receive queue when this returns
        }
        else
        {
            peer.Shutdown(SocketShutdown.Send);
        }

        // At once: the receive loop's completion for them is still to run (it is another thread's work).
        Assert.That(connection.IsIdleClean(), Is.False, sendsBytes ? "bytes nobody asked for" : "the peer's FIN");
    }

    private static async Task<(Socket Peer, PipeConnection Connection)> PairAsync(Kind kind)
    {
        if (kind == Kind.Epoll && !EpollTransport.Enabled)
        {
            Assert.Ignore("the epoll transport runs on Linux x64 only");
        }

        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        PipeConnection connection;
        if (kind == Kind.Epoll)
        {
            // The listener's accept4 path: the peer is connected (in the backlog) before the blocking accept.
            await peer.ConnectAsync(listener.LocalEndPoint!);
            connection = EpollTransport.Accept(listener.SafeHandle, out int errno)
                ?? throw new SocketException(errno);
            Assert.That(Encoding.ASCII.GetString(connection.FormatRemoteAddress()), Is.EqualTo("127.0.0.1"));
        }
        else
        {
            var accept = listener.AcceptAsync();
            await peer.ConnectAsync(listener.LocalEndPoint!);
            connection = new SocketConnection(await accept, directInput: kind == Kind.SocketDirect);
        }

        connection.Start();
        return (peer, connection);
    }

    private static async Task<byte[]> ReceiveAllAsync(Socket socket)
    {
        var all = new MemoryStream();
        var buffer = new byte[256 * 1024];
        while (true)
        {
            int n = await socket.ReceiveAsync(buffer.AsMemory()).AsTask().WaitAsync(Timeout);
            if (n == 0)
            {
                return all.ToArray();
            }

            all.Write(buffer, 0, n);
        }
    }
}
