using System.Net.Sockets;

namespace Router.Net.Transport;

/// <summary>A <see cref="DirectReader"/> over the runtime's sockets: a zero-byte receive to wait, then a receive.</summary>
internal sealed class SocketReader : DirectReader
{
    private readonly Socket _socket;

    public SocketReader(PipeConnection connection, Socket socket)
        : base(connection)
    {
        _socket = socket;
    }

    protected override ValueTask<int> WaitForDataAsync() => _socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None);

    protected override ValueTask<int> ReceiveAsync(Memory<byte> memory) => _socket.ReceiveAsync(memory, SocketFlags.None);
}
