using System.Runtime.InteropServices;

namespace Router.Net.Hosting;

/// <summary>
/// The router command lifts its soft limit on open descriptors to the hard limit at start, as Go's runtime and nginx's
/// <c>worker_rlimit_nofile</c> do: every connection is a descriptor, and a process that runs out stops accepting.
/// Worse, the .NET runtime opens a pipe for every thread it starts and aborts the process ("Out of memory.") when it
/// cannot, so running out while the thread pool grows is fatal. Linux only; elsewhere the limit is left as it is.
/// </summary>
internal static unsafe partial class DescriptorLimit
{
    private const int RlimitNofile = 7;

    /// <summary>Raises the soft limit to the hard one; returns the soft limit now in force, or null where unknown.</summary>
    public static long? Raise()
    {
        if (!TryGet(out var limit))
        {
            return null;
        }

        if (limit.Current < limit.Maximum)
        {
            var raised = new RLimit { Current = limit.Maximum, Maximum = limit.Maximum };
            if (SetRLimit(RlimitNofile, &raised) == 0)
            {
                limit = raised;
            }
        }

        return Soft(limit);
    }

    /// <summary>The soft limit on open descriptors now in force, or null where unknown.</summary>
    public static long? Current() => TryGet(out var limit) ? Soft(limit) : null;

    private static bool TryGet(out RLimit limit)
    {
        limit = default;
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        fixed (RLimit* read = &limit)
        {
            return GetRLimit(RlimitNofile, read) == 0;
        }
    }

    private static long Soft(RLimit limit) => limit.Current > long.MaxValue ? long.MaxValue : (long)limit.Current;

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRLimit(int resource, RLimit* limit);

    [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static partial int SetRLimit(int resource, RLimit* limit);

    // struct rlimit on 64-bit Linux: two rlim_t (unsigned long).
    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }
}
