using System.IO.Pipelines;
using System.Net.Sockets;

namespace Router.Net.Transport;

/// <summary>
/// A socket as a duplex pipe: a receive loop fills <see cref="PipeConnection.Input"/> (inline scheduling, so socket
/// completions run the application code without a thread hop); <see cref="Output"/> sends straight to the socket.
/// </summary>
internal sealed partial class SocketConnection : PipeConnection
{
    private readonly SocketWriter _writer;
    private readonly SocketReader? _reader;

    /// <param name="socket">The connected socket.</param>
    /// <param name="directInput">
    /// Read the socket on demand (<see cref="SocketReader"/>): no input pipe or receive loop, so an idle connection is
    /// small. For client connections; upstream connections keep the receive loop so an idle pooled one notices a close.
    /// </param>
    public SocketConnection(Socket socket, bool directInput = false)
        : base(socket, inputPipe: !directInput)
    {
        Socket.NoDelay = true;
        _writer = new SocketWriter(this, socket.SafeHandle, socket);
        _reader = directInput ? new SocketReader(this, socket) : null;
    }

    public override PipeReader Input => _reader ?? base.Input;

    public override PipeWriter Output => _writer;

    public override bool IsClosed => Aborted || (_reader is null ? _receiveTask.IsCompleted : _reader.Ended);

    /// <summary>
    /// The input holds nothing, and neither does the socket: the receive loop may not have taken in bytes or a FIN that
    /// are already in the kernel (its completion is still to run), and a connection reused then would hand them to the
    /// next request as its response. One poll, as the epoll transport's peek.
    /// </summary>
    public override bool IsIdleClean()
    {
        if (!base.IsIdleClean())
        {
            return false;
        }

        try
        {
            return !Socket.Poll(0, SelectMode.SelectRead);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    public override void Start()
    {
        if (_reader is null)
        {
            _receiveTask = ReceiveLoopAsync();
        }
    }

    protected override ValueTask CompleteOutputAsync() => _writer.CompleteAsync();

    /// <summary>The output ended with a FIN; closing the socket now is graceful.</summary>
    protected override ValueTask CloseGracefullyAsync(bool graceful)
    {
        if (graceful)
        {
            Socket.Dispose();
        }

        return ValueTask.CompletedTask;
    }
}
