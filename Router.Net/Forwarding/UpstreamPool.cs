using System.Net;
using System.Net.Sockets;
using Router.Core.Routing;
using Router.Net.Tls;
using Router.Net.Transport;
using Router.Net.Transport.Epoll;

namespace Router.Net.Forwarding;

/// <summary>
/// Idle keep-alive connections to one destination. A small array stack under a lock: a push allocates nothing
/// (unlike ConcurrentStack), and the lock is held for a few instructions.
/// </summary>
internal sealed class UpstreamPool
{
    // Idle connections kept per destination; beyond this a returned connection is closed. As many as a burst of
    // requests needed at once, as SocketsHttpHandler, Envoy and HAProxy keep: a lower cap makes every load above it
    // close connections that are opened again moments later (256 closed and reopened ~10 % of upstream connections
    // at 512 client connections). The cluster's idleTimeoutMs closes what a burst left behind.
    private const int MaxIdle = 4096;

    // How deep TryRent looks for a connection whose socket completes on the calling thread.
    private const int AffinityScan = 8;

    // Grows by doubling, under the lock, up to MaxIdle: once it has held the peak, a push allocates nothing.
    private UpstreamConnection?[] _idle = new UpstreamConnection?[16];
    private readonly Lock _gate = new();
    private int _idleCount;
    private int _open;
    private int _draining;
    private long _accepted;

    public UpstreamPool(DestinationState destination)
    {
        Destination = destination;
    }

    public DestinationState Destination { get; }

    /// <summary>Open connections (idle and in use).</summary>
    public int OpenConnections => Volatile.Read(ref _open);

    public int IdleConnections => Volatile.Read(ref _idleCount);

    /// <summary>Connections opened over the pool's life.</summary>
    public long ConnectionsOpened => Interlocked.Read(ref _accepted);

    /// <summary>Gets the pool of a destination, creating it on first use (once per destination, not per request).</summary>
    public static UpstreamPool For(DestinationState destination)
    {
        var pool = Volatile.Read(ref destination.Pool) as UpstreamPool;
        if (pool is not null)
        {
            return pool;
        }

        var created = new UpstreamPool(destination);
        return Interlocked.CompareExchange(ref destination.Pool, created, null) as UpstreamPool ?? created;
    }

    /// <summary>
    /// Takes an idle connection that is still usable and was made with <paramref name="tls"/> (null: plain), or null.
    /// A connection made under other TLS settings (the cluster's tls changed) is closed.
    /// </summary>
    public UpstreamConnection? TryRent(UpstreamTlsOptions? tls = null)
    {
        while (true)
        {
            UpstreamConnection? candidate;
            lock (_gate)
            {
                if (_idleCount == 0)
                {
                    return null;
                }

                // Thread affinity: with inline socket completions each socket belongs to one engine thread. An upstream
                // connection on the thread that is serving the client keeps the whole exchange on that thread (no
                // wake-up of a second thread per request). Among the most recently used few, else the top.
                int top = _idleCount - 1;
                int pick = top;
                int thread = Environment.CurrentManagedThreadId;
                for (int i = top, end = Math.Max(0, _idleCount - AffinityScan); i >= end; i--)
                {
                    if (_idle[i]!.Connection.ReceiveThread == thread)
                    {
                        pick = i;
                        break;
                    }
                }

                candidate = _idle[pick];
                if (pick < top)
                {
                    // Keep the stack ordered by age (eviction takes the oldest from the bottom).
                    Array.Copy(_idle, pick + 1, _idle, pick, top - pick);
                }

                _idle[top] = null;
                _idleCount = top;
            }

            if (ReferenceEquals(candidate!.Tls, tls)
                && (candidate.ReuseBefore == long.MaxValue || Environment.TickCount64 < candidate.ReuseBefore)
                && candidate.IsReusable())
            {
                return candidate;
            }

            candidate.CloseInBackground();
        }
    }

    /// <summary>
    /// Opens a new connection with a connect timeout, then a TLS handshake when <paramref name="tls"/> is given
    /// (within the same timeout again). Throws <see cref="UpstreamConnectException"/>.
    /// </summary>
    public async ValueTask<UpstreamConnection> ConnectAsync(int timeoutMs, int maxConnections, UpstreamTlsOptions? tls = null)
    {
        if (tls?.Error is not null)
        {
            // The cluster's CA or client certificate could not be loaded: never fall back to clear text.
            throw new UpstreamConnectException(UpstreamConnectError.TlsHandshake, null);
        }

        if (maxConnections > 0 && Interlocked.Increment(ref _open) > maxConnections)
        {
            Interlocked.Decrement(ref _open);
            throw new UpstreamConnectException(UpstreamConnectError.PoolExhausted, null);
        }
        else if (maxConnections <= 0)
        {
            Interlocked.Increment(ref _open);
        }

        var endPoint = Destination.EndPoint;
        if (tls is null && EpollTransport.Enabled && endPoint is IPEndPoint ip)
        {
            return await ConnectOnLoopAsync(ip, timeoutMs).ConfigureAwait(false);
        }

        Socket? socket = null;
        using var timeout = new CancellationTokenSource(timeoutMs);
        try
        {
            // Made inside the try: out of descriptors, the socket itself fails (EMFILE), and that is a failed connect
            // (502) like the epoll path's, not an exception that ends the client connection unanswered.
            socket = endPoint is DnsEndPoint
                ? new Socket(SocketType.Stream, ProtocolType.Tcp)
                : new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            socket.NoDelay = true;
            await socket.ConnectAsync(endPoint, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException)
        {
            socket?.Dispose();
            throw ConnectFailed(ex);
        }

        Interlocked.Increment(ref _accepted);
        ITransportConnection connection;
        if (tls is null)
        {
            connection = new SocketConnection(socket) { KeepReadingAfterSendFailure = true };
        }
        else
        {
            TlsConnection secure;
            try
            {
                secure = await TlsConnection.ConnectAsync(socket, tls.CreateClientOptions(endPoint), timeoutMs).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or System.Security.Authentication.AuthenticationException or OperationCanceledException or SocketException)
            {
                // Unknown CA, wrong name, client certificate refused, plain-text upstream, or too slow: a bad gateway.
                Interlocked.Decrement(ref _open);
                throw new UpstreamConnectException(ex is OperationCanceledException ? UpstreamConnectError.Timeout : UpstreamConnectError.TlsHandshake, ex);
            }

            secure.KeepReadingAfterSendFailure = true;
            connection = secure;
        }

        connection.Start();
        return new UpstreamConnection(connection, this) { Tls = tls };
    }

    /// <summary>A plain connection on the caller's epoll loop (the exchange then stays on that thread).</summary>
    private async ValueTask<UpstreamConnection> ConnectOnLoopAsync(IPEndPoint endPoint, int timeoutMs)
    {
        EpollConnection connection;
        try
        {
            connection = await EpollConnection.ConnectAsync(endPoint, timeoutMs, EpollTransport.LoopForConnect()).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or SocketException)
        {
            throw ConnectFailed(ex);
        }

        Interlocked.Increment(ref _accepted);
        connection.KeepReadingAfterSendFailure = true;
        return new UpstreamConnection(connection, this);
    }

    /// <summary>
    /// Gives back the count a connect that failed took, and says how it failed: refused (a socket error) or timed out
    /// (the runtime socket's cancellation, the epoll connect's <see cref="TimeoutException"/>), or could not be tried
    /// for want of local resources.
    /// </summary>
    private UpstreamConnectException ConnectFailed(Exception ex)
    {
        Interlocked.Decrement(ref _open);
        return ex switch
        {
            SocketException local when LocalShortage.Is(local.SocketErrorCode)
                => new UpstreamConnectException(UpstreamConnectError.LocalResources, local),
            SocketException refused => new UpstreamConnectException(UpstreamConnectError.Refused, refused),
            _ => new UpstreamConnectException(UpstreamConnectError.Timeout, null),
        };
    }

    /// <summary>Returns a connection whose last exchange completed cleanly.</summary>
    public void Return(UpstreamConnection connection)
    {
        connection.Uses++;
        connection.IdleSince = Environment.TickCount64;
        int keepAlive = connection.Response.KeepAliveTimeout;
        connection.Response.Release();
        if (keepAlive >= 0)
        {
            // "Keep-Alive: timeout=N": the upstream closes the connection after N idle seconds, and a request sent as it
            // does is lost (a POST is not retried: 502). Reused for N less a second (half of N under two seconds): its
            // timer started about when it sent the response, and the next request must reach it before the timer fires.
            long usableMs = (keepAlive * 1000L) - Math.Min(1000L, keepAlive * 500L);
            if (usableMs <= 0)
            {
                connection.CloseInBackground();
                return;
            }

            connection.ReuseBefore = connection.IdleSince + usableMs;
        }
        else
        {
            connection.ReuseBefore = long.MaxValue;
        }

        lock (_gate)
        {
            // Checked under the lock: Drain empties the stack under it, so nothing can slip in after.
            if (Volatile.Read(ref _draining) == 0 && _idleCount < MaxIdle)
            {
                if (_idleCount == _idle.Length)
                {
                    Array.Resize(ref _idle, Math.Min(_idle.Length * 2, MaxIdle));
                }

                _idle[_idleCount++] = connection;
                return;
            }
        }

        connection.CloseInBackground();
    }

    internal void OnClosed() => Interlocked.Decrement(ref _open);

    /// <summary>
    /// Closes idle connections older than <paramref name="maxIdleMs"/> or past the keep-alive timeout their upstream
    /// announced; called from the heartbeat.
    /// </summary>
    public void EvictIdle(long nowMs, long maxIdleMs)
    {
        // Off the hot path (one heartbeat tick): a batch at a time, so the stack is shifted once per batch, not once
        // per connection, and the lock is not held while they close.
        UpstreamConnection?[]? batch = null;
        while (true)
        {
            int expired = 0;
            lock (_gate)
            {
                // The bottom of the stack is the oldest (and, a destination announcing one keep-alive timeout, the
                // first past it).
                int limit = Math.Min(_idleCount, 64);
                while (expired < limit && (nowMs - _idle[expired]!.IdleSince > maxIdleMs || nowMs >= _idle[expired]!.ReuseBefore))
                {
                    expired++;
                }

                if (expired > 0)
                {
                    batch ??= new UpstreamConnection?[64];
                    Array.Copy(_idle, batch, expired);
                    Array.Copy(_idle, expired, _idle, 0, _idleCount - expired);
                    Array.Clear(_idle, _idleCount - expired, expired);
                    _idleCount -= expired;
                }
            }

            if (expired == 0)
            {
                return;
            }

            for (int i = 0; i < expired; i++)
            {
                batch![i]!.CloseInBackground();
                batch[i] = null;
            }
        }
    }

    /// <summary>Closes every idle connection and stops pooling (the destination was removed from config).</summary>
    public void Drain()
    {
        Volatile.Write(ref _draining, 1);
        UpstreamConnection?[] victims;
        lock (_gate)
        {
            victims = _idle[.._idleCount];
            Array.Clear(_idle, 0, _idleCount);
            _idleCount = 0;
        }

        foreach (var victim in victims)
        {
            victim!.CloseInBackground();
        }
    }
}

internal enum UpstreamConnectError
{
    Refused,
    Timeout,
    PoolExhausted,

    /// <summary>This process is out of descriptors or socket buffers (EMFILE, ENFILE, ENOBUFS): the destination is not at fault.</summary>
    LocalResources,

    /// <summary>The TLS handshake with the upstream failed (certificate not trusted, name mismatch, mTLS refused).</summary>
    TlsHandshake,
}

internal sealed class UpstreamConnectException : Exception
{
    public UpstreamConnectException(UpstreamConnectError error, Exception? inner)
        : base("upstream connect failed: " + error, inner)
    {
        Error = error;
    }

    public UpstreamConnectError Error { get; }
}
