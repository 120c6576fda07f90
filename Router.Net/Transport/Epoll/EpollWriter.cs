using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Router.Net.Transport.Epoll;

/// <summary>A <see cref="SocketWriter"/> on an epoll-registered socket: when the socket buffer is full it waits for the write edge.</summary>
internal sealed class EpollWriter : SocketWriter
{
    private readonly SafeSocketHandle _handle;
    private readonly Readiness _writable;

    public EpollWriter(PipeConnection connection, Socket socket, Readiness writable)
        : base(connection, socket)
    {
        _handle = socket.SafeHandle;
        _writable = writable;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    protected override async ValueTask<int> SendWaitingAsync(ReadOnlyMemory<byte> data)
    {
        while (true)
        {
            int sequence = _writable.Sequence;
            int sent = NativeSend.TrySend(_handle, data.Span, out int errno);
            if (sent > 0)
            {
                return sent;
            }

            if (sent < 0 && errno != EpollNative.EAGAIN && errno != EpollNative.EINTR)
            {
                throw new SocketException((int)EpollNative.ToSocketError(errno));
            }

            await _writable.WaitAsync(sequence).ConfigureAwait(false);
        }
    }
}
