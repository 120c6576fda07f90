using System.IO.Pipelines;
using System.Net;

namespace Router.Net.Transport;

/// <summary>
/// A byte stream to a peer seen as two pipes. Plain sockets and TLS streams both implement it, so the parser and the
/// forwarder never know which one they are talking through.
/// </summary>
internal interface ITransportConnection : IDuplexPipe, IAsyncDisposable
{
    EndPoint? RemoteEndPoint { get; }

    /// <summary>The peer's IP address as ASCII text (<c>unknown</c> when the peer has none), for X-Forwarded-For and logs.</summary>
    byte[] FormatRemoteAddress();

    /// <summary>True once the peer closed or the connection was aborted.</summary>
    bool IsClosed { get; }

    /// <summary>
    /// For an idle connection nobody is reading (a pooled upstream one): true when it is open and nothing arrived
    /// since its last exchange (no unasked bytes, no FIN).
    /// </summary>
    bool IsIdleClean();

    /// <summary>The first recorded reason the connection closed, for logs.</summary>
    string? CloseReason { get; }

    /// <summary>
    /// True when the input ended at the peer's reset but read as an end (after every byte that came before it) rather
    /// than failing. A reader that must tell a whole close-delimited body from a cut one checks this at the end.
    /// </summary>
    bool EndedByReset { get; }

    /// <summary>
    /// The managed thread the last receive completion ran on (0 when unknown). With inline socket completions that is
    /// the socket engine thread owning the socket, which the upstream pool uses for affinity.
    /// </summary>
    int ReceiveThread { get; }

    /// <summary>
    /// Completes when a read of <see cref="IDuplexPipe.Input"/> would find something (bytes, the end, an error, a
    /// cancellation), holding no buffer or state machine meanwhile where the transport can (readers that receive on
    /// demand); the result means nothing. Where the input is a pipe it completes at once and the read waits instead.
    /// </summary>
    ValueTask<int> WaitForInputAsync();

    /// <summary>Starts moving bytes between the transport and the pipes.</summary>
    void Start();

    /// <summary>Closes at once (reset); pending reads and writes fail.</summary>
    void Abort(string reason);
}
