using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Router.Net.Transport;

/// <summary>
/// A few descriptors held in reserve for the .NET runtime. Out of descriptors, the runtime aborts the process
/// ("Out of memory.") if it has to start a thread then: every thread opens a pipe (two descriptors) as it starts. So
/// the reserve is given back the moment the process runs out, whoever finds it out (an accept, an upstream connect, a
/// health probe, the control-plane client), accepting pauses while it is out, and a timer takes it back once
/// descriptors are free again. Process-wide, like the limit. Linux only (elsewhere it is always whole and holds nothing).
/// </summary>
/// <remarks>
/// Out of descriptors is seen in one place for every runtime socket: a first-chance handler for
/// <see cref="SocketException"/> with <see cref="SocketError.TooManyOpenSockets"/> (EMFILE, ENFILE), which the
/// runtime throws when it cannot make a socket, including inside HttpClient and ClientWebSocket, and which the epoll
/// transport's own socket() throws too. Exceptions are already the slow path there; the handler is one type test.
/// </remarks>
internal static partial class DescriptorReserve
{
    private const int Count = 8;

    /// <summary>
    /// Descriptors that must be free beside the reserve for it to be taken back, and that an accept must leave free
    /// (<see cref="HasHeadroom"/>). A thread start holds up to three at once (strace: its pipe, and the
    /// /proc/self/task/N/comm its creator names it through), and an accept is checked only once its continuation runs,
    /// maybe after the runtime started a thread (to run it, say): with four left before the accept, that thread still
    /// finds its three, and the check then gives the reserve back. Without headroom the reserve would also be taken
    /// back with nothing else free, and the runtime left with none until the next failure gave it back.
    /// </summary>
    private const int Headroom = 4;

    private const int RestoreDelayMs = 50;

    private const int ENFILE = 23;
    private const int EMFILE = 24;

    private static readonly bool Enabled = OperatingSystem.IsLinux();

    private static readonly Lock Gate = new();
    private static readonly int[] Held = new int[Count];
    private static readonly Timer? Restorer;
    private static int s_held;
    private static int s_restoring;

    static DescriptorReserve()
    {
        if (Enabled)
        {
            Restorer = new Timer(static _ => OnRestoreDue(), null, Timeout.Infinite, Timeout.Infinite);
            AppDomain.CurrentDomain.FirstChanceException += static (_, e) =>
            {
                if (e.Exception is SocketException { SocketErrorCode: SocketError.TooManyOpenSockets })
                {
                    Release();
                }
            };
        }
    }

    /// <summary>The reserve is held: accepting may go on. While it is not, nothing accepts, or the accepts would take it.</summary>
    public static bool IsWhole => !Enabled || Volatile.Read(ref s_held) == Count;

    /// <summary>
    /// Opens what is missing of the reserve, if <see cref="Headroom"/> more are free beside it. False when the process
    /// is still (nearly) out of descriptors: then what it could open is closed again, so a reserve is either whole or
    /// wholly given back, and it is tried again shortly.
    /// </summary>
    public static bool TryRestore()
    {
        if (!Enabled)
        {
            return true;
        }

        bool restored;
        lock (Gate)
        {
            restored = RestoreHeld();
        }

        if (!restored)
        {
            ScheduleRestore();
        }

        return restored;
    }

    /// <summary>
    /// Closes the reserve, so the descriptors are free for whoever needs one next (the runtime, for a thread), and
    /// schedules taking it back. Accepting pauses until then (<see cref="IsWhole"/>).
    /// </summary>
    public static void Release()
    {
        if (!Enabled)
        {
            return;
        }

        lock (Gate)
        {
            ReleaseHeld();
        }

        ScheduleRestore();
    }

    /// <summary>
    /// After an accept: false when fewer than <see cref="Headroom"/> descriptors are left, i.e. the accept took the
    /// last ones it may take (the caller then gives the runtime the reserve). A few dup(2)s of a reserve descriptor,
    /// closed at once. True when the reserve is not held (it is the runtime's already).
    /// </summary>
    public static bool HasHeadroom()
    {
        if (!Enabled)
        {
            return true;
        }

        lock (Gate)
        {
            return s_held == 0 || ProbeFree(Held[0], Headroom);
        }
    }

    private static void ScheduleRestore()
    {
        // One timer for every release, so something takes the reserve back even when no accept is waiting for it.
        if (Interlocked.Exchange(ref s_restoring, 1) == 0)
        {
            Restorer!.Change(RestoreDelayMs, Timeout.Infinite);
        }
    }

    private static void OnRestoreDue()
    {
        Volatile.Write(ref s_restoring, 0);
        _ = TryRestore();
    }

    private static bool RestoreHeld()
    {
        if (s_held == Count)
        {
            return true;
        }

        // A try that fails opens everything free and closes it again, and the runtime must not need a thread in
        // between: so raw syscalls, a few microseconds in all.
        while (s_held < Count)
        {
            int fd = EventFd(0, EfdCloexec);
            if (fd < 0)
            {
                ReleaseHeld();
                return false;
            }

            Held[s_held] = fd;
            Volatile.Write(ref s_held, s_held + 1);
        }

        if (!ProbeFree(Held[0], Headroom))
        {
            ReleaseHeld();
            return false;
        }

        return true;
    }

    /// <summary>True unless fewer than <paramref name="wanted"/> descriptors can be opened (EMFILE, ENFILE).</summary>
    private static bool ProbeFree(int source, int wanted)
    {
        Span<int> probes = stackalloc int[wanted];
        int opened = 0;
        bool free = true;
        while (opened < wanted)
        {
            int fd = Dup(source);
            if (fd < 0)
            {
                free = Marshal.GetLastPInvokeError() is not (EMFILE or ENFILE);
                break;
            }

            probes[opened++] = fd;
        }

        while (opened > 0)
        {
            _ = Close(probes[--opened]);
        }

        return free;
    }

    private static void ReleaseHeld()
    {
        while (s_held > 0)
        {
            int last = s_held - 1;
            Volatile.Write(ref s_held, last);
            _ = Close(Held[last]);
        }
    }

    private const int EfdCloexec = 0x80000;

    // eventfd(2) holds a descriptor without a path lookup, and unlike open(2) it is not variadic.
    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventFd(uint initial, int flags);

    // dup(2) rather than fcntl(F_DUPFD_CLOEXEC), which is variadic: a probe is closed again at once (and the router
    // execs nothing).
    [LibraryImport("libc", EntryPoint = "dup", SetLastError = true)]
    private static partial int Dup(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
