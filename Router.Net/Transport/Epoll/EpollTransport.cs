using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Router.Net.Transport.Epoll;

/// <summary>
/// Where plain TCP connections are served: our epoll loops on Linux x64 (one per core), else the runtime's sockets.
/// <c>ROUTER_TRANSPORT=sockets</c> switches the loops off (for comparison, or if they misbehave somewhere).
/// </summary>
internal static class EpollTransport
{
    private static readonly Lock s_gate = new();
    private static EpollLoop[]? s_loops;
    private static int s_next;

    /// <summary>True when connections use the epoll loops.</summary>
    public static bool Enabled { get; } = OperatingSystem.IsLinux()
        && RuntimeInformation.ProcessArchitecture == Architecture.X64
        && !string.Equals(Environment.GetEnvironmentVariable("ROUTER_TRANSPORT"), "sockets", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Accepts the next connection on <paramref name="listener"/> with accept4 (waiting if the listener blocks), as an
    /// epoll connection on the next loop in turn: no runtime <see cref="Socket"/>, endpoint or accept state is made
    /// (about 560 bytes per connection through <see cref="Socket.AcceptAsync()"/>). Null with <paramref name="errno"/>
    /// when accept4 failed. <paramref name="setNoDelay"/>: false when the listener has TCP_NODELAY, which accepted
    /// sockets inherit on Linux (one setsockopt less per connection).
    /// </summary>
    public static unsafe EpollConnection? Accept(SafeHandle listener, out int errno, bool setNoDelay = true)
    {
        const int SockaddrStorage = 128;
        byte* address = stackalloc byte[SockaddrStorage];
        int length = SockaddrStorage;
        int fd = EpollNative.Accept4(listener, address, &length, EpollNative.SockNonBlock | EpollNative.SockCloexec);
        if (fd < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return null;
        }

        errno = 0;
        var handle = new SocketDescriptor(fd);
        try
        {
            return new EpollConnection(handle, AddressText.Format(new ReadOnlySpan<byte>(address, Math.Min(length, SockaddrStorage))), NextLoop(), setNoDelay);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Registers a listening socket with the next loop in turn, which accepts on it from now on.</summary>
    public static EpollLoop Register(EpollAcceptor acceptor)
    {
        var loop = NextLoop();
        loop.Register(acceptor);
        return loop;
    }

    /// <summary>The loop to open an upstream connection on: the caller's, so request and response share a thread.</summary>
    public static EpollLoop LoopForConnect()
    {
        return EpollLoop.Current ?? NextLoop();
    }

    /// <summary>The loops in turn.</summary>
    private static EpollLoop NextLoop()
    {
        var loops = Loops();
        return loops[(int)((uint)Interlocked.Increment(ref s_next) % (uint)loops.Length)];
    }

    private static EpollLoop[] Loops()
    {
        var loops = Volatile.Read(ref s_loops);
        if (loops is not null)
        {
            return loops;
        }

        lock (s_gate)
        {
            if (s_loops is null)
            {
                int count = int.TryParse(Environment.GetEnvironmentVariable("ROUTER_EPOLL_THREADS"), out int n) && n > 0
                    ? n
                    : Environment.ProcessorCount;
                var created = new EpollLoop[count];
                for (int i = 0; i < count; i++)
                {
                    created[i] = new EpollLoop(i);
                }

                Volatile.Write(ref s_loops, created);
            }

            return s_loops;
        }
    }
}
