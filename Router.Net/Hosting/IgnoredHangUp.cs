using System.Runtime.InteropServices;

namespace Router.Net.Hosting;

/// <summary>
/// Takes back SIGHUP when the router inherited it ignored (started under <c>nohup</c>, or by a supervisor that ignores
/// it). .NET respects an inherited ignore and never installs its handler then, so <c>kill -HUP</c> would silently
/// neither reload the config nor reopen the access log. Here a hangup can only do those two things, never stop the
/// router, so handling it again is safe; nginx does the same. An ignored SIGINT (a script's background job) is left
/// ignored: stopping on it is what the ignore is there to prevent.
/// </summary>
internal static unsafe partial class IgnoredHangUp
{
    private const int SIGHUP = 1;
    private static readonly nint SigIgn = 1;

    // Larger than struct sigaction on every Linux libc (152 bytes on glibc x64 and arm64); the handler comes first.
    private const int SigactionBytes = 256;

    /// <summary>Resets SIGHUP to its default disposition if it is ignored; true when it was. Call before registering for it.</summary>
    public static bool Restore()
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        byte* current = stackalloc byte[SigactionBytes];
        if (Sigaction(SIGHUP, null, current) != 0 || *(nint*)current != SigIgn)
        {
            return false;
        }

        byte* byDefault = stackalloc byte[SigactionBytes];
        new Span<byte>(byDefault, SigactionBytes).Clear(); // SIG_DFL, an empty mask, no flags
        return Sigaction(SIGHUP, byDefault, null) == 0;
    }

    [LibraryImport("libc", EntryPoint = "sigaction", SetLastError = true)]
    private static partial int Sigaction(int signal, byte* action, byte* previous);
}
