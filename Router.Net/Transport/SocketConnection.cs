using System.Net;
using System.Net.Sockets;

namespace Router.Net.Transport;

/// <summary>
/// A socket as a pair of pipes: a receive loop fills <see cref="PipeConnection.Input"/>, a send loop drains <see cref="PipeConnection.Output"/>.
/// Both pipes use inline scheduling so socket completions run the application code without a thread hop.
/// </summary>
internal sealed partial class SocketConnection : PipeConnection
{
    public SocketConnection(Socket socket)
        : base(socket)
    {
        _socket.NoDelay = true;
        LocalEndPoint = socket.LocalEndPoint;
    }

    public EndPoint? LocalEndPoint { get; }

    public Socket Socket => _socket;

    public override bool IsClosed => Volatile.Read(ref _aborted) != 0 || _receiveTask.IsCompleted;

    public override void Start()
    {
        _receiveTask = ReceiveLoopAsync();
        _sendTask = SendLoopAsync();
    }

    /// <summary>The send loop ended with a FIN; closing the socket now is graceful.</summary>
    protected override ValueTask CloseGracefullyAsync(bool graceful)
    {
        if (graceful)
        {
            _socket.Dispose();
        }

        return ValueTask.CompletedTask;
    }
}
