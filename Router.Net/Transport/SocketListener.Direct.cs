using System.Net;
using Microsoft.Extensions.Logging;
using Router.Net.Transport.Epoll;

namespace Router.Net.Transport;

// Accepting for the epoll transport: a dedicated thread blocks in accept4 on the listening socket and hands each
// descriptor, already an EpollConnection on the next loop, to the handler. The runtime's accept would make a Socket,
// its handle, two endpoint objects and accept state per connection (about 560 bytes, most of it kept for life); here a
// connection costs its descriptor's handle and its formatted address. One thread per listener is cheap next to that.
internal sealed partial class SocketListener
{
    private Task StartDirectAcceptThread()
    {
        var stopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() => DirectAcceptLoop(stopped))
        {
            IsBackground = true,
            Name = "Router accept " + EndPoint,
        };
        thread.UnsafeStart();
        return stopped.Task;
    }

    private void DirectAcceptLoop(TaskCompletionSource stopped)
    {
        try
        {
            while (Volatile.Read(ref _stopped) == 0)
            {
                if (_gate is not null)
                {
                    try
                    {
                        _gate.Wait(_stopping.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                }

                EpollConnection? accepted;
                int errno;
                try
                {
                    accepted = EpollTransport.Accept(_socket.SafeHandle, out errno);
                }
                catch (ObjectDisposedException)
                {
                    _gate?.Release();
                    break;
                }

                if (accepted is null)
                {
                    _gate?.Release();
                    if (Volatile.Read(ref _stopped) != 0)
                    {
                        break;
                    }

                    if (errno is EpollNative.EINTR or EpollNative.EPROTO or EpollNative.ECONNABORTED)
                    {
                        // The connection went away before we took it, or a signal: try the next one.
                        continue;
                    }

                    // Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS): the connection stays in the backlog;
                    // pause briefly rather than spin on it, then try again.
                    LogAcceptFailed(_logger, EndPoint, EpollNative.ToSocketError(errno));
                    Thread.Sleep(50);
                    continue;
                }

                try
                {
                    _handler.OnConnection(accepted, _release);
                }
                catch (Exception ex)
                {
                    // As on the runtime's accept path: a handler that throws did not take the connection.
                    LogHandlerFailed(_logger, ex);
                    accepted.Abort("handler failed");
                    _gate?.Release();
                }
            }
        }
        finally
        {
            stopped.SetResult();
        }
    }
}
