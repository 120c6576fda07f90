using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Router.Net.Transport;

/// <summary>
/// One non-blocking <c>send(2)</c> straight to the socket on Linux, tried before <see cref="Socket.SendAsync(ReadOnlyMemory{byte}, SocketFlags, CancellationToken)"/>.
/// </summary>
/// <remarks>
/// Almost every send on a proxy completes at once (the response fits in the socket buffer). Doing that one syscall
/// ourselves skips the runtime's asynchronous send machinery, and a connection that never has to wait on a send never
/// creates the socket's send event-args (about 360 bytes it would keep for life). Anything other than a full or partial
/// success (would block, an error) is left to the runtime's path, which waits and maps errors as usual.
/// </remarks>
internal static partial class NativeSend
{
    private const int MsgDontWait = 0x40;
    private const int MsgNoSignal = 0x4000;

    /// <summary>True where the direct send is used (Linux); elsewhere every send takes the runtime's path.</summary>
    public static readonly bool Supported = OperatingSystem.IsLinux()
        && (RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64);

    /// <summary>Bytes the kernel took (possibly fewer than asked), or 0 when it took none or failed.</summary>
    public static int TrySend(SafeHandle socket, ReadOnlySpan<byte> data)
    {
        int sent = TrySend(socket, data, out _);
        return sent > 0 ? sent : 0;
    }

    /// <summary>Bytes the kernel took, or -1 with <paramref name="errno"/> set (EAGAIN when the socket buffer is full).</summary>
    public static unsafe int TrySend(SafeHandle socket, ReadOnlySpan<byte> data, out int errno)
    {
        fixed (byte* p = data)
        {
            nint sent = Send(socket, p, data.Length, MsgDontWait | MsgNoSignal);
            errno = sent < 0 ? Marshal.GetLastPInvokeError() : 0;
            return (int)sent;
        }
    }

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    private static unsafe partial nint Send(SafeHandle socket, byte* buffer, nint length, int flags);
}
