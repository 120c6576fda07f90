using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Router.Core.Resilience;
using Router.Core.Routing;
using Router.Net.Http1;
using Router.Net.Transport;

namespace Router.Net.Forwarding;

/// <summary>What every client connection of one router shares: the live routing table, limits, heartbeat, logging.</summary>
internal sealed class ProxyRuntime
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<ProxyConnection, byte> _connections = new();
    private int _shuttingDown;
    private ConcurrencyLimit _globalLimit = new(null);
    private readonly long[] _shed = new long[5];
    private long _retries;

    public ProxyRuntime(RoutingTable table, HttpLimits limits, Heartbeat heartbeat, ILoggerFactory loggerFactory)
    {
        Table = table;
        Limits = limits;
        Heartbeat = heartbeat;
        Logger = loggerFactory.CreateLogger("Router.Proxy");
        heartbeat.OnTick(EvictIdleUpstreams);
    }

    public RoutingTable Table { get; }

    public HttpLimits Limits { get; }

    public Heartbeat Heartbeat { get; }

    public ILogger Logger { get; }

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

    public void Unregister(ProxyConnection connection) => _connections.TryRemove(connection, out _);

    /// <summary>Stops keep-alive: idle connections close now, busy ones after their current response.</summary>
    public void BeginShutdown()
    {
        Volatile.Write(ref _shuttingDown, 1);
        foreach (var pair in _connections)
        {
            pair.Key.CloseIfIdle();
        }
    }

    /// <summary>Waits until every client connection has closed or the deadline passed; then aborts the rest.</summary>
    public async Task DrainAsync(TimeSpan timeout)
    {
        BeginShutdown();
        var deadline = DateTime.UtcNow + timeout;
        while (!_connections.IsEmpty && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20).ConfigureAwait(false);
        }

        foreach (var pair in _connections)
        {
            pair.Key.Abort("shutdown");
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

/// <summary>Turns accepted sockets into proxied client connections.</summary>
internal sealed class ProxyConnectionHandler : IConnectionHandler
{
    private readonly ProxyRuntime _runtime;
    private readonly bool _https;

    public ProxyConnectionHandler(ProxyRuntime runtime, bool https)
    {
        _runtime = runtime;
        _https = https;
    }

    public void OnConnection(Socket socket)
    {
        var connection = new ProxyConnection(_runtime, new SocketConnection(socket), _https);
        _ = connection.RunAsync();
    }

    /// <summary>Runs the connection and gives its slot back (to the listener's <see cref="ConnectionGate"/>) once it closed.</summary>
    public void OnConnection(Socket socket, Action closed)
    {
        var connection = new ProxyConnection(_runtime, new SocketConnection(socket), _https);
        _ = RunAsync(connection, closed);
    }

    private static async Task RunAsync(ProxyConnection connection, Action closed)
    {
        try
        {
            await connection.RunAsync().ConfigureAwait(false);
        }
        finally
        {
            closed();
        }
    }
}
