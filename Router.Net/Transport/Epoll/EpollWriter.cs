using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using System.Runtime.InteropServices;

namespace Router.Net.Transport.Epoll;

/// <summary>A <see cref="SocketWriter"/> on an epoll-registered socket: when the socket buffer is full it waits for the write edge.</summary>
internal sealed class EpollWriter : SocketWriter, IValueTaskSource<int>
{
    private Readiness _writable;

    public EpollWriter(PipeConnection connection, SafeHandle handle)
        : base(connection, handle, socket: null)
    {
    }

    /// <summary>From the loop: a writable edge (or an abort).</summary>
    public void Signal() => _writable.Signal();

    /// <summary>Completes at the first writable edge since <paramref name="drainedAt"/> (a connect's completion, from 0).</summary>
    public ValueTask<int> WaitWritableAsync(int drainedAt) => _writable.WaitAsync(this, drainedAt);

    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    protected override async ValueTask<int> SendWaitingAsync(ReadOnlyMemory<byte> data)
    {
        while (true)
        {
            int sequence = _writable.Sequence;
            int sent = NativeSend.TrySend(Handle, data.Span, out int errno);
            if (sent > 0)
            {
                return sent;
            }

            if (sent < 0 && errno != EpollNative.EAGAIN && errno != EpollNative.EINTR)
            {
                throw new SocketException((int)EpollNative.ToSocketError(errno));
            }

            await _writable.WaitAsync(this, sequence).ConfigureAwait(false);
        }
    }

    int IValueTaskSource<int>.GetResult(short token) => _writable.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _writable.GetStatus(token);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _writable.OnCompleted(continuation, state, token, flags);
}
