using Microsoft.Win32.SafeHandles;

namespace Router.Net.Transport;

/// <summary>
/// A few descriptors held in reserve for the .NET runtime. Out of descriptors, the runtime aborts the process
/// ("Out of memory.") if it has to start a thread then: it opens a pipe for every thread. So accepting gives the reserve
/// back the moment accept4 fails for want of descriptors, and takes it again before it accepts once more: while the
/// router is out, the runtime always finds a few free. Process-wide, like the limit. Linux only (elsewhere it is always
/// whole and holds nothing).
/// </summary>
internal static class DescriptorReserve
{
    private const int Count = 8;

    private static readonly bool Enabled = OperatingSystem.IsLinux();

    private static readonly Lock Gate = new();
    private static readonly SafeFileHandle?[] Held = new SafeFileHandle?[Count];
    private static int s_held;

    /// <summary>The reserve is held: accepting may go on. While it is not, nothing accepts, or the accepts would take it.</summary>
    public static bool IsWhole => !Enabled || Volatile.Read(ref s_held) == Count;

    /// <summary>
    /// Opens what is missing of the reserve. False when the process is still out of descriptors: then what it could
    /// open is closed again, so a reserve is either whole or wholly given back.
    /// </summary>
    public static bool TryRestore()
    {
        if (!Enabled)
        {
            return true;
        }

        lock (Gate)
        {
            while (s_held < Count)
            {
                try
                {
                    Held[s_held] = File.OpenHandle("/dev/null", FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    ReleaseHeld();
                    return false;
                }

                Volatile.Write(ref s_held, s_held + 1);
            }

            return true;
        }
    }

    /// <summary>Closes the reserve, so the descriptors are free for whoever needs one next.</summary>
    public static void Release()
    {
        lock (Gate)
        {
            ReleaseHeld();
        }
    }

    private static void ReleaseHeld()
    {
        while (s_held > 0)
        {
            int last = s_held - 1;
            Volatile.Write(ref s_held, last);
            Held[last]!.Dispose();
            Held[last] = null;
        }
    }
}
