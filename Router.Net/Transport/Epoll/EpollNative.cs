using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Router.Net.Transport.Epoll;

/// <summary>
/// The few Linux calls the epoll transport makes itself: epoll, socket/connect/accept, non-blocking recv, the loops'
/// connect timers (timerfd), and socket options (sends go through <see cref="NativeSend"/>, shared with the runtime-socket transport).
/// </summary>
internal static unsafe partial class EpollNative
{
    public const uint EPOLLIN = 0x001;
    public const uint EPOLLOUT = 0x004;
    public const uint EPOLLERR = 0x008;
    public const uint EPOLLHUP = 0x010;
    public const uint EPOLLRDHUP = 0x2000;
    public const uint EPOLLET = 1u << 31;

    public const int EpollCtlAdd = 1;
    public const int EpollCtlDel = 2;
    public const int EpollCloexec = 0x80000;

    public const int MsgPeek = 0x02;
    public const int MsgDontWait = 0x40;

    public const int EINTR = 4;
    public const int ENFILE = 23;
    public const int EMFILE = 24;
    public const int EAGAIN = 11;
    public const int EPROTO = 71;
    public const int ECONNABORTED = 103;
    public const int EINPROGRESS = 115;

    public const int SockNonBlock = 0x800;
    public const int SockCloexec = 0x80000;

    public const int ShutRd = 0;
    public const int ShutWr = 1;

    /// <summary>
    /// struct epoll_event is packed on x86-64 (12 bytes); other architectures lay it out differently, so the transport
    /// is only used there (<see cref="EpollTransport.Enabled"/>).
    /// </summary>
    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    public struct EpollEvent
    {
        public uint Events;
        public ulong Data;
    }

    [LibraryImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
    public static partial int EpollCreate(int flags);

    [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    public static partial int EpollCtl(int epfd, int op, SafeHandle fd, EpollEvent* ev);

    [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    public static partial int EpollWait(int epfd, EpollEvent* events, int maxEvents, int timeout);

    [LibraryImport("libc", EntryPoint = "timerfd_create", SetLastError = true)]
    private static partial int TimerFdCreate(int clockId, int flags);

    [LibraryImport("libc", EntryPoint = "timerfd_settime", SetLastError = true)]
    private static partial int TimerFdSetTime(SafeHandle fd, int flags, long* newValue, long* oldValue);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static partial nint Read(SafeHandle fd, void* buffer, nint count);

    /// <summary>A non-blocking one-shot timer descriptor on the monotonic clock, readable once it expired.</summary>
    public static SafeFileHandle OpenTimer()
    {
        const int ClockMonotonic = 1;
        int fd = TimerFdCreate(ClockMonotonic, SockNonBlock | SockCloexec); // TFD_NONBLOCK, TFD_CLOEXEC: the same bits
        if (fd < 0)
        {
            throw new SocketException((int)ToSocketError(Marshal.GetLastPInvokeError()));
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>Arms <paramref name="timer"/> to expire once, <paramref name="delay"/> from now (at least 1 ns: 0 would disarm it).</summary>
    public static void ArmTimer(SafeHandle timer, TimeSpan delay)
    {
        long nanoseconds = Math.Max(1, delay.Ticks * 100);

        // struct itimerspec on x86-64: interval {tv_sec, tv_nsec} (zero: one-shot), then value {tv_sec, tv_nsec}.
        // It fails only for a bad descriptor or value, and neither can be passed here.
        long* spec = stackalloc long[4] { 0, 0, nanoseconds / 1_000_000_000, nanoseconds % 1_000_000_000 };
        _ = TimerFdSetTime(timer, 0, spec, null);
    }

    /// <summary>Reads the expiry count, so a level-triggered timer stops being readable until it expires again.</summary>
    public static void ClearTimer(SafeHandle timer)
    {
        ulong expirations;
        _ = Read(timer, &expirations, sizeof(ulong));
    }

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    public static partial nint Recv(SafeHandle fd, byte* buffer, nint length, int flags);

    /// <summary>
    /// accept4(2): the next connection as a new non-blocking descriptor, with the peer's address in
    /// <paramref name="address"/> (a sockaddr of *<paramref name="length"/> bytes). -1 with errno on failure.
    /// </summary>
    [LibraryImport("libc", EntryPoint = "accept4", SetLastError = true)]
    public static partial int Accept4(SafeHandle fd, byte* address, int* length, int flags);

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "connect", SetLastError = true)]
    private static partial int Connect(SafeHandle fd, byte* address, int length);

    /// <summary>A new non-blocking TCP socket for <paramref name="family"/>, owned by the returned handle.</summary>
    public static SocketDescriptor OpenStream(AddressFamily family)
    {
        const int SockStream = 1;
        int domain = family == AddressFamily.InterNetworkV6 ? 10 /* AF_INET6 */ : 2 /* AF_INET */;
        int fd = Socket(domain, SockStream | SockNonBlock | SockCloexec, 0);
        if (fd < 0)
        {
            throw new SocketException((int)ToSocketError(Marshal.GetLastPInvokeError()));
        }

        return new SocketDescriptor(fd);
    }

    /// <summary>
    /// Starts a non-blocking connect to <paramref name="endPoint"/>: 0 when it finished at once, EINPROGRESS while it
    /// runs (the first write edge says it ended; SO_ERROR says how), else the errno of the failure.
    /// </summary>
    public static int StartConnect(SafeHandle fd, IPEndPoint endPoint)
    {
        // struct sockaddr_in / sockaddr_in6: family (host order), port (network order), then the address.
        byte* address = stackalloc byte[28];
        new Span<byte>(address, 28).Clear();
        var span = new Span<byte>(address, 28);
        BinaryPrimitives.WriteUInt16BigEndian(span[2..], (ushort)endPoint.Port);
        int length;
        if (endPoint.AddressFamily == AddressFamily.InterNetworkV6)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(span, 10);
            endPoint.Address.TryWriteBytes(span.Slice(8, 16), out _);
            BinaryPrimitives.WriteUInt32LittleEndian(span[24..], (uint)endPoint.Address.ScopeId);
            length = 28;
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(span, 2);
            endPoint.Address.TryWriteBytes(span.Slice(4, 4), out _);
            length = 16;
        }

        if (Connect(fd, address, length) == 0)
        {
            return 0;
        }

        int errno = Marshal.GetLastPInvokeError();

        // Interrupted, a non-blocking connect carries on in the background like EINPROGRESS.
        return errno == EINTR ? EINPROGRESS : errno;
    }

    [LibraryImport("libc", EntryPoint = "shutdown", SetLastError = true)]
    public static partial int Shutdown(SafeHandle fd, int how);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static partial int SetSockOpt(SafeHandle fd, int level, int name, void* value, int length);

    /// <summary>TCP_NODELAY on: responses leave as they are written, not held for Nagle.</summary>
    public static void SetNoDelay(SafeHandle fd)
    {
        int on = 1;
        SetSockOpt(fd, 6 /* IPPROTO_TCP */, 1 /* TCP_NODELAY */, &on, sizeof(int));
    }

    /// <summary>SO_LINGER {on, 0}: the close that follows sends a reset instead of a FIN (an abort).</summary>
    public static void SetResetOnClose(SafeHandle fd)
    {
        var linger = stackalloc int[2] { 1, 0 };
        SetSockOpt(fd, 1 /* SOL_SOCKET */, 13 /* SO_LINGER */, linger, 2 * sizeof(int));
    }

    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    private static partial int GetSockOpt(SafeHandle fd, int level, int name, int* value, int* length);

    /// <summary>SO_ERROR: 0 when a non-blocking connect succeeded, else its errno (-1 when the call itself failed).</summary>
    public static int PendingError(SafeHandle fd)
    {
        int value = 0;
        int length = sizeof(int);
        return GetSockOpt(fd, 1 /* SOL_SOCKET */, 4 /* SO_ERROR */, &value, &length) == 0 ? value : -1;
    }

    /// <summary>The SocketError a failed recv/send maps to, as the runtime maps it, so close reasons read the same.</summary>
    public static SocketError ToSocketError(int errno) => errno switch
    {
        104 => SocketError.ConnectionReset,   // ECONNRESET
        32 => SocketError.Shutdown,           // EPIPE
        110 => SocketError.TimedOut,          // ETIMEDOUT
        111 => SocketError.ConnectionRefused, // ECONNREFUSED
        113 => SocketError.HostUnreachable,   // EHOSTUNREACH
        101 => SocketError.NetworkUnreachable, // ENETUNREACH
        103 => SocketError.ConnectionAborted, // ECONNABORTED
        107 => SocketError.NotConnected,      // ENOTCONN
        9 => SocketError.OperationAborted,    // EBADF: closed under us (an abort)
        24 or 23 => SocketError.TooManyOpenSockets, // EMFILE, ENFILE: out of descriptors
        105 or 12 => SocketError.NoBufferSpaceAvailable, // ENOBUFS, ENOMEM
        _ => SocketError.SocketError,
    };
}
