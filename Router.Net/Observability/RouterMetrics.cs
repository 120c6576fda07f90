using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Router.Core.Resilience;
using Router.Core.Routing;
using Router.Net.Forwarding;

namespace Router.Net.Observability;

/// <summary>
/// The router's metrics as System.Diagnostics.Metrics instruments. The hot path only bumps preallocated counters
/// (<see cref="RequestCounters"/>, <see cref="UpstreamFailures"/>); every instrument is observable, so its value is read
/// when someone collects (the Prometheus endpoint, or any MeterListener such as dotnet-counters).
/// </summary>
internal sealed class RouterMetrics : IDisposable
{
    public const string MeterName = "Router";

    private readonly ConcurrentDictionary<(string Route, string Cluster), RequestCounters> _requests = new();
    private readonly ConcurrentDictionary<string, long[]> _upstreamFailures = new(StringComparer.Ordinal);
    private readonly Meter _meter;
    private long _reloads;
    private long _failedReloads;

    public RouterMetrics(ProxyRuntime runtime, Func<long?>? controlPlaneVersion = null, Func<bool>? controlPlaneConnected = null)
    {
        _meter = new Meter(MeterName);
        NoRoute = new RequestCounters("", "");
        _meter.CreateObservableCounter("router_requests_total", ObserveRequests, description: "Requests answered, by route, serving cluster and status class.");
        _meter.CreateObservableCounter("router_request_duration_seconds_bucket", ObserveBuckets, description: "Request duration from head parsed to response sent.");
        _meter.CreateObservableCounter("router_request_duration_seconds_sum", ObserveDurationSum);
        _meter.CreateObservableCounter("router_request_duration_seconds_count", ObserveDurationCount);
        _meter.CreateObservableCounter("router_upstream_failures_total", ObserveUpstreamFailures, description: "Failed upstream attempts by cluster and reason.");
        _meter.CreateObservableCounter("router_requests_shed_total", () => ObserveShed(runtime), description: "Requests answered 503 by a limit or for want of a destination.");
        _meter.CreateObservableCounter("router_retries_total", () => runtime.Retries, description: "Requests retried on another destination.");
        _meter.CreateObservableGauge("router_in_flight_requests", () => ObserveInFlight(runtime), description: "Requests being proxied now.");
        _meter.CreateObservableGauge("router_client_connections", () => (long)runtime.OpenConnections, description: "Open client connections.");
        _meter.CreateObservableGauge("router_upstream_connections", () => ObserveUpstreamConnections(runtime), description: "Open upstream connections by destination.");
        _meter.CreateObservableGauge("router_destination_healthy", () => ObserveDestinations(runtime, DestinationGauge.Healthy), description: "1 when the destination may take traffic (healthy, not ejected, breaker closed).");
        _meter.CreateObservableGauge("router_destination_breaker_state", () => ObserveDestinations(runtime, DestinationGauge.Breaker), description: "Circuit breaker: 0 closed, 1 half-open, 2 open.");
        _meter.CreateObservableGauge("router_destination_in_flight", () => ObserveDestinations(runtime, DestinationGauge.InFlight), description: "Requests in flight per destination.");
        _meter.CreateObservableGauge("router_config_generation", () => runtime.Table.Current?.Info.Generation ?? 0, description: "Generation of the live config.");
        _meter.CreateObservableCounter("router_config_reloads_total", ObserveReloads, description: "Config applies by result.");
        if (controlPlaneConnected is not null)
        {
            _meter.CreateObservableGauge("router_control_plane_connected", () => controlPlaneConnected() ? 1L : 0L, description: "1 when connected to the control plane.");
        }

        if (controlPlaneVersion is not null)
        {
            _meter.CreateObservableGauge("router_control_plane_applied_version", () => controlPlaneVersion() ?? 0, description: "Last control-plane version applied.");
        }

        ProcessMetrics.Register(_meter);
    }

    /// <summary>
    /// Adds the TLS listeners' handshake counters: completed, failed and timed out per listener (timeouts are also
    /// failures), and handshakes refused over the concurrent-handshake limit.
    /// </summary>
    public void AddTls(Tls.ListenerCertificates certificates)
    {
        _meter.CreateObservableCounter("router_tls_handshakes_total", () => ObserveHandshakes(certificates), description: "TLS handshakes on the listeners, by listener and result (a timeout is also a failure).");
        _meter.CreateObservableCounter("router_tls_handshakes_refused_total", () => certificates.Gate.Refused, description: "New TLS connections closed at once for being over the concurrent-handshake limit.");
    }

    /// <summary>Adds the admin listener's open connections and the ones it refused over its cap.</summary>
    public void AddAdmin(Admin.AdminServer admin)
    {
        _meter.CreateObservableGauge("router_admin_connections", () => (long)admin.OpenConnections, description: "Open admin connections being served.");
        _meter.CreateObservableCounter("router_admin_connections_refused_total", () => admin.Refused, description: "Admin connections answered 503 and closed for being over the admin connection cap.");
    }

    private static IEnumerable<Measurement<long>> ObserveHandshakes(Tls.ListenerCertificates certificates)
    {
        foreach (var listener in certificates.Listeners)
        {
            var name = new KeyValuePair<string, object?>("listener", listener.Name);
            yield return new Measurement<long>(listener.Handshakes, name, new KeyValuePair<string, object?>("result", "success"));
            yield return new Measurement<long>(listener.Failures, name, new KeyValuePair<string, object?>("result", "failure"));
            yield return new Measurement<long>(listener.Timeouts, name, new KeyValuePair<string, object?>("result", "timeout"));
        }
    }

    /// <summary>This router's meter (named <see cref="MeterName"/>; every router in a process has its own).</summary>
    public Meter Meter => _meter;

    /// <summary>Counters for requests that matched no route (404) or came before any config.</summary>
    public RequestCounters NoRoute { get; }

    public void CountReload(bool applied) => Interlocked.Increment(ref applied ? ref _reloads : ref _failedReloads);

    /// <summary>
    /// Resolves the counters of each route of a new snapshot once, at apply time, so a request finds them with an
    /// array index: slot 0 is the primary cluster, then the fallbacks in order.
    /// </summary>
    /// <remarks>
    /// Series of (route, cluster) pairs and clusters the new snapshot no longer has are dropped, so ids that change
    /// with every reload do not grow the exposition (and memory) for ever. A request still finishing on the old
    /// snapshot counts into the dropped counters; a pair that comes back starts from 0, a counter reset to Prometheus.
    /// </remarks>
    public void OnConfigApplied(RoutingSnapshot snapshot)
    {
        var live = new HashSet<(string Route, string Cluster)>();
        foreach (var route in snapshot.Routes)
        {
            var slots = new RequestCounters[1 + route.Fallbacks.Length];
            slots[0] = For(route.Id, route.Cluster.Id);
            live.Add((route.Id, route.Cluster.Id));
            for (int i = 0; i < route.Fallbacks.Length; i++)
            {
                slots[i + 1] = For(route.Id, route.Fallbacks[i].Id);
                live.Add((route.Id, route.Fallbacks[i].Id));
            }

            route.Metrics = slots;
        }

        foreach (var key in _requests.Keys)
        {
            if (!live.Contains(key))
            {
                _requests.TryRemove(key, out _);
            }
        }

        var clusters = new HashSet<string>(StringComparer.Ordinal);
        foreach (var cluster in snapshot.Clusters)
        {
            clusters.Add(cluster.Id);
        }

        foreach (var cluster in _upstreamFailures.Keys)
        {
            if (!clusters.Contains(cluster))
            {
                _upstreamFailures.TryRemove(cluster, out _);
            }
        }
    }

    /// <summary>The failure counters of a cluster, indexed by <see cref="UpstreamOutcome"/>.</summary>
    public long[] UpstreamFailures(string cluster) => _upstreamFailures.GetOrAdd(cluster, static _ => new long[Enum.GetValues<UpstreamOutcome>().Length]);

    private RequestCounters For(string route, string cluster) => _requests.GetOrAdd((route, cluster), static key => new RequestCounters(key.Route, key.Cluster));

    private IEnumerable<Measurement<long>> ObserveRequests()
    {
        foreach (var counters in AllRequestCounters())
        {
            for (int statusClass = 1; statusClass < 6; statusClass++)
            {
                long value = Volatile.Read(ref counters.ByClass[statusClass]);
                if (value > 0)
                {
                    yield return new Measurement<long>(value, new("route", counters.Route), new("cluster", counters.Cluster), new("code_class", $"{statusClass}xx"));
                }
            }
        }
    }

    private IEnumerable<Measurement<long>> ObserveBuckets()
    {
        foreach (var counters in AllRequestCounters())
        {
            long cumulative = 0;
            for (int i = 0; i < counters.Buckets.Length; i++)
            {
                cumulative += Volatile.Read(ref counters.Buckets[i]);
                string le = i < RequestCounters.BucketBounds.Length
                    ? RequestCounters.BucketBounds[i].ToString(System.Globalization.CultureInfo.InvariantCulture)
                    : "+Inf";
                yield return new Measurement<long>(cumulative, new("route", counters.Route), new("cluster", counters.Cluster), new("le", le));
            }
        }
    }

    private IEnumerable<Measurement<double>> ObserveDurationSum()
    {
        foreach (var counters in AllRequestCounters())
        {
            yield return new Measurement<double>(Interlocked.Read(ref counters.DurationTicksSum) / (double)Stopwatch.Frequency, new("route", counters.Route), new("cluster", counters.Cluster));
        }
    }

    private IEnumerable<Measurement<long>> ObserveDurationCount()
    {
        foreach (var counters in AllRequestCounters())
        {
            yield return new Measurement<long>(Interlocked.Read(ref counters.Count), new("route", counters.Route), new("cluster", counters.Cluster));
        }
    }

    private IEnumerable<RequestCounters> AllRequestCounters()
    {
        if (Interlocked.Read(ref NoRoute.Count) > 0)
        {
            yield return NoRoute;
        }

        foreach (var pair in _requests)
        {
            yield return pair.Value;
        }
    }

    private IEnumerable<Measurement<long>> ObserveUpstreamFailures()
    {
        foreach (var pair in _upstreamFailures)
        {
            foreach (var outcome in Enum.GetValues<UpstreamOutcome>())
            {
                string? reason = FailureLabel(outcome);
                long value = Volatile.Read(ref pair.Value[(int)outcome]);
                if (reason is not null && value > 0)
                {
                    yield return new Measurement<long>(value, new("cluster", pair.Key), new("reason", reason));
                }
            }
        }
    }

    /// <summary>The <c>reason</c> label of an outcome that counts as an upstream failure; null for the others.</summary>
    public static string? FailureLabel(UpstreamOutcome outcome) => outcome switch
    {
        UpstreamOutcome.ConnectFailed => "connect",
        UpstreamOutcome.ConnectTimeout => "connect_timeout",
        UpstreamOutcome.NoResponse => "reset",
        UpstreamOutcome.ResponseTimeout => "timeout",
        UpstreamOutcome.BadResponse => "bad_response",
        UpstreamOutcome.StreamBroken => "stream_broken",
        _ => null,
    };

    private static IEnumerable<Measurement<long>> ObserveShed(ProxyRuntime runtime)
    {
        foreach (var reason in Enum.GetValues<ShedReason>())
        {
            yield return new Measurement<long>(runtime.Shed(reason), new KeyValuePair<string, object?>("limit", ShedHeaders.Label(reason)));
        }
    }

    private static long ObserveInFlight(ProxyRuntime runtime)
    {
        long total = 0;
        var snapshot = runtime.Table.Current;
        if (snapshot is not null)
        {
            foreach (var cluster in snapshot.Clusters)
            {
                total += Volatile.Read(ref cluster.InFlight);
            }
        }

        return total;
    }

    private static IEnumerable<Measurement<long>> ObserveUpstreamConnections(ProxyRuntime runtime)
    {
        var snapshot = runtime.Table.Current;
        if (snapshot is null)
        {
            yield break;
        }

        foreach (var cluster in snapshot.Clusters)
        {
            foreach (var destination in cluster.Destinations)
            {
                var pool = Volatile.Read(ref destination.Pool) as UpstreamPool;
                yield return new Measurement<long>(pool?.OpenConnections ?? 0, new("cluster", cluster.Id), new("destination", destination.Address));
            }
        }
    }

    private static IEnumerable<Measurement<long>> ObserveDestinations(ProxyRuntime runtime, DestinationGauge gauge)
    {
        var snapshot = runtime.Table.Current;
        if (snapshot is null)
        {
            yield break;
        }

        foreach (var cluster in snapshot.Clusters)
        {
            foreach (var destination in cluster.Destinations)
            {
                long value = gauge switch
                {
                    DestinationGauge.Healthy => destination.IsAvailable ? 1 : 0,
                    DestinationGauge.Breaker => destination.Breaker?.State switch
                    {
                        CircuitState.Open => 2,
                        CircuitState.HalfOpen => 1,
                        _ => 0,
                    },
                    _ => Volatile.Read(ref destination.InFlight),
                };
                yield return new Measurement<long>(value, new("cluster", cluster.Id), new("destination", destination.Address));
            }
        }
    }

    private IEnumerable<Measurement<long>> ObserveReloads()
    {
        yield return new Measurement<long>(Interlocked.Read(ref _reloads), new KeyValuePair<string, object?>("result", "success"));
        yield return new Measurement<long>(Interlocked.Read(ref _failedReloads), new KeyValuePair<string, object?>("result", "failure"));
    }

    public void Dispose() => _meter.Dispose();

    private enum DestinationGauge
    {
        Healthy,
        Breaker,
        InFlight,
    }
}
