using System.Net.Sockets;

namespace Router.Net.Transport;

/// <summary>
/// Socket errors that mean this process or host ran short (out of descriptors: EMFILE, ENFILE; out of socket
/// buffers: ENOBUFS), not that the peer failed. A connect or probe that fails so says nothing about the destination,
/// so neither the upstream pool nor the health prober holds it against one.
/// </summary>
internal static class LocalShortage
{
    public static bool Is(SocketError error) => error is SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable;
}
