using System.Runtime.InteropServices;

namespace Router.Net.Transport.Epoll;

/// <summary>
/// A socket descriptor the epoll transport opened itself (accept4, socket), closed with a plain <c>close(2)</c>.
/// </summary>
/// <remarks>
/// Not <c>SafeSocketHandle</c>: released on its own, outside a runtime <c>Socket</c>, that handle treats the close as
/// abortive and sets SO_LINGER to 0 first, so every connection would end with a reset after its FIN, and a reset can
/// make the peer's kernel drop response bytes it has not yet handed to the application. Smaller, too (32 bytes, not 64).
/// An abort sets the linger itself before disposing (<see cref="EpollNative.SetResetOnClose"/>).
/// </remarks>
internal sealed partial class SocketDescriptor : SafeHandle
{
    public SocketDescriptor(int fd)
        : base(invalidHandleValue: -1, ownsHandle: true)
    {
        SetHandle(fd);
    }

    public override bool IsInvalid => handle == -1;

    protected override bool ReleaseHandle() => Close((int)handle) == 0;

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
