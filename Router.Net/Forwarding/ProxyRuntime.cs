using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Router.Core.Resilience;
using Router.Core.Routing;
using Router.Net.Http1;
using Router.Net.Tls;
using Router.Net.Transport;
using Router.Net.Transport.Epoll;

namespace Router.Net.Forwarding;

/// <summary>What every client connection of one router shares: the live routing table, limits, heartbeat, logging.</summary>
internal sealed class ProxyRuntime
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<ProxyConnection, byte> _connections = new();
    private int _shuttingDown;

    // Completed when shutdown has begun and the last client connection is gone; DrainAsync awaits it instead of polling.
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ConcurrencyLimit _globalLimit = new(null);
    private readonly long[] _shed = new long[5];
    private long _retries;

    public ProxyRuntime(RoutingTable table, HttpLimits limits, Heartbeat heartbeat, ILoggerFactory loggerFactory)
    {
        Table = table;
        Limits = limits;
        Heartbeat = heartbeat;
        Logger = loggerFactory.CreateLogger("Router.Proxy");
        heartbeat.OnTick(CheckDeadlines);
        heartbeat.OnTick(EvictIdleUpstreams);
    }

    public RoutingTable Table { get; }

    /// <summary>Counters the hot path bumps; set once by the host before any connection is accepted.</summary>
    public Observability.RouterMetrics Metrics { get; set; } = null!;

    /// <summary>The access log, when one is configured.</summary>
    public Observability.AccessLog? AccessLog { get; set; }

    public HttpLimits Limits { get; }

    public Heartbeat Heartbeat { get; }

    public ILogger Logger { get; }

    /// <summary>Loaded upstream TLS settings per cluster <c>tls</c> block (CA roots, client certificates).</summary>
    public UpstreamTlsRegistry UpstreamTls { get; } = new();

    /// <summary>Idle time after which a pooled upstream connection is closed. 60 s, under the common 75 s server keep-alive.</summary>
    public long UpstreamIdleMs { get; init; } = 60_000;

    /// <summary>The cap on open client connections shared by the proxy listeners (RouterHostOptions.MaxClientConnections); null: none.</summary>
    public ConnectionGate? Connections { get; init; }

    public bool ShuttingDown => Volatile.Read(ref _shuttingDown) != 0;

    /// <summary>The global concurrency limit. Replaced (not mutated) when the config changes it; a request exits the object it entered.</summary>
    public ConcurrencyLimit GlobalLimit => Volatile.Read(ref _globalLimit);

    public long Retries => Interlocked.Read(ref _retries);

    public long Shed(ShedReason reason) => Interlocked.Read(ref _shed[(int)reason]);

    public void CountShed(ShedReason reason) => Interlocked.Increment(ref _shed[(int)reason]);

    public void CountRetry() => Interlocked.Increment(ref _retries);

    /// <summary>Applies the global limit of a newly live config.</summary>
    public void OnConfigApplied(RoutingSnapshot snapshot)
    {
        var limit = snapshot.Config.MaxConcurrentRequests;
        var current = GlobalLimit;
        bool same = current.IsUnlimited ? limit is null : current.Limit == limit;
        if (!same)
        {
            Volatile.Write(ref _globalLimit, new ConcurrencyLimit(limit));
        }
    }

    public int OpenConnections => _connections.Count;

    public void Register(ProxyConnection connection) => _connections.TryAdd(connection, 0);

    public void Unregister(ProxyConnection connection)
    {
        _connections.TryRemove(connection, out _);
        // Pairs with the exchange in BeginShutdown: one of the two sides sees both the flag and the empty set.
        Interlocked.MemoryBarrier();
        if (ShuttingDown && _connections.IsEmpty)
        {
            _drained.TrySetResult();
        }
    }

    /// <summary>
    /// Marks the router as shutting down (/ready answers 503 "draining", a connection's next request is not read)
    /// without touching open connections yet: the first step of a stop, before the listeners close.
    /// </summary>
    public void MarkShuttingDown() => Interlocked.Exchange(ref _shuttingDown, 1);

    /// <summary>Stops keep-alive: idle connections close now, busy ones after their current response.</summary>
    public void BeginShutdown()
    {
        MarkShuttingDown();
        foreach (var pair in _connections)
        {
            pair.Key.CloseIfIdle();
        }

        if (_connections.IsEmpty)
        {
            _drained.TrySetResult();
        }
    }

    /// <summary>Waits until every client connection has closed, the timeout passed or <paramref name="drainNow"/> fired; then aborts the rest.</summary>
    public async Task DrainAsync(TimeSpan timeout, CancellationToken drainNow = default)
    {
        BeginShutdown();
        if (timeout > TimeSpan.Zero)
        {
            try
            {
                await _drained.Task.WaitAsync(timeout, drainNow).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
            {
                // Deadline reached (or cut short): whatever is still open is aborted below.
            }
        }

        foreach (var pair in _connections)
        {
            pair.Key.Abort("shutdown");
        }

        // Aborted connections unwind on their own threads, counting and logging their requests on the way out: wait
        // for that (briefly), so the access log and the upstream pools, closed next, see every request finished.
        try
        {
            await _drained.Task.WaitAsync(TimeSpan.FromSeconds(1), CancellationToken.None).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
    }

    /// <summary>Every tick: each open client connection checks its deadlines (one registry, no second one for timers).</summary>
    private void CheckDeadlines(long nowMs)
    {
        foreach (var pair in _connections)
        {
            pair.Key.OnHeartbeat(nowMs);
        }
    }

    private void EvictIdleUpstreams(long nowMs)
    {
        var snapshot = Table.Current;
        if (snapshot is null)
        {
            return;
        }

        foreach (var cluster in snapshot.Clusters)
        {
            foreach (var destination in cluster.Destinations)
            {
                (Volatile.Read(ref destination.Pool) as UpstreamPool)?.EvictIdle(nowMs, UpstreamIdleMs);
            }
        }
    }
}

/// <summary>Turns accepted sockets into proxied client connections (over TLS when the listener has a context).</summary>
internal sealed class ProxyConnectionHandler : IConnectionHandler
{
    private readonly ProxyRuntime _runtime;
    private readonly TlsServerContext? _tls;

    public ProxyConnectionHandler(ProxyRuntime runtime, TlsServerContext? tls = null)
    {
        _runtime = runtime;
        _tls = tls;
    }

    /// <summary>Plain listeners on the epoll transport accept with accept4 (no runtime socket per connection).</summary>
    public bool TakesEpollConnections => _tls is null && EpollTransport.Enabled;

    public void OnConnection(Socket socket) => _ = Create(socket, closed: null).RunAsync();

    /// <summary>Runs the connection and gives its slot back (to the listener's <see cref="ConnectionGate"/>) once it closed.</summary>
    public void OnConnection(Socket socket, Action closed) => _ = Create(socket, closed).RunAsync();

    /// <summary>
    /// An epoll connection starts on its loop thread, at the edge its registration reports, not on the loop that
    /// accepted it (connections go to the loops in turn): its first request is then handled on the thread that serves
    /// the connection, which opens or reuses upstream connections there.
    /// </summary>
    public void OnConnection(ITransportConnection connection, Action? closed)
    {
        var proxy = new ProxyConnection(_runtime, connection, https: false, closed);
        if (connection is EpollConnection epoll)
        {
            epoll.StartOnLoop(static state => _ = ((ProxyConnection)state).RunAsync(), proxy);
        }
        else
        {
            _ = proxy.RunAsync();
        }
    }

    private ProxyConnection Create(Socket socket, Action? closed)
    {
        ITransportConnection transport = _tls is not null
            ? TlsConnection.Accept(socket, _tls)
            : new SocketConnection(socket, directInput: true);
        return new ProxyConnection(_runtime, transport, https: _tls is not null, closed);
    }
}
