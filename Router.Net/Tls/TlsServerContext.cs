using System.Net.Security;
using System.Security.Authentication;

namespace Router.Net.Tls;

/// <summary>Handshake limits of TLS listeners, with documented defaults.</summary>
internal sealed class TlsHandshakeLimits
{
    /// <summary>
    /// Time a client gets to complete the handshake. 10 s, as Kestrel's default HandshakeTimeout: generous for a
    /// slow mobile link, short enough that a client that connects and stalls holds a socket only briefly.
    /// </summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Handshakes in progress at once, over all TLS listeners. Over it a new connection is closed at once rather than
    /// queued, so a flood of slow handshakes cannot grow memory or take the CPU from established connections. 256
    /// keeps a 2-core box busy (a full handshake costs ~1 ms of CPU) while far more stay queued in the kernel backlog.
    /// </summary>
    public int MaxConcurrentHandshakes { get; init; } = 256;

    public static TlsHandshakeLimits Default { get; } = new();
}

/// <summary>
/// What a TLS listener's connections share: the current certificate store (swapped whole on reload), the handshake
/// limits and counters.
/// </summary>
internal sealed class TlsServerContext
{
    private readonly HandshakeGate _gate;
    private CertificateStore _store;
    private long _handshakes;
    private long _failures;
    private long _timeouts;

    public TlsServerContext(string name, CertificateStore store, TlsHandshakeLimits limits, HandshakeGate gate)
    {
        Name = name;
        _store = store;
        _gate = gate;
        HandshakeTimeout = limits.HandshakeTimeout;
    }

    /// <summary>The listener's address as configured (or <c>--listen-tls</c>), to match it on reload.</summary>
    public string Name { get; }

    public TimeSpan HandshakeTimeout { get; }

    public CertificateStore Store => Volatile.Read(ref _store);

    public long Handshakes => Interlocked.Read(ref _handshakes);

    public long Failures => Interlocked.Read(ref _failures);

    public long Timeouts => Interlocked.Read(ref _timeouts);

    /// <summary>New connections get the new store; established ones keep the certificate they negotiated.</summary>
    public void Swap(CertificateStore store) => Volatile.Write(ref _store, store);

    public bool TryEnterHandshake() => _gate.TryEnter();

    public void ExitHandshake() => _gate.Exit();

    public void CountHandshake() => Interlocked.Increment(ref _handshakes);

    public void CountFailure(bool timedOut)
    {
        Interlocked.Increment(ref _failures);
        if (timedOut)
        {
            Interlocked.Increment(ref _timeouts);
        }
    }

    /// <summary>The <see cref="ServerOptionsSelectionCallback"/>: picks the certificate by the client's SNI name.</summary>
    public static ValueTask<SslServerAuthenticationOptions> SelectOptions(SslStream stream, SslClientHelloInfo hello, object? state, CancellationToken cancellationToken)
    {
        var context = (TlsServerContext)state!;
        var options = context.Store.SelectOptions(hello.ServerName);
        if (options is null)
        {
            // rejectUnknownSni: fail the handshake (the client sees a handshake failure, not a wrong certificate).
            throw new AuthenticationException($"no certificate for SNI name '{hello.ServerName}'");
        }

        return ValueTask.FromResult(options);
    }
}

/// <summary>A non-blocking counter of handshakes in progress, shared by every TLS listener of a router.</summary>
internal sealed class HandshakeGate
{
    private readonly int _limit;
    private int _inProgress;
    private long _refused;

    public HandshakeGate(int limit)
    {
        _limit = limit;
    }

    public int InProgress => Volatile.Read(ref _inProgress);

    /// <summary>Connections closed because the limit was reached.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    public bool TryEnter()
    {
        if (Interlocked.Increment(ref _inProgress) > _limit)
        {
            Interlocked.Decrement(ref _inProgress);
            Interlocked.Increment(ref _refused);
            return false;
        }

        return true;
    }

    public void Exit() => Interlocked.Decrement(ref _inProgress);
}
