using Microsoft.Extensions.Logging;
using Router.Core.Routing;

namespace Router.Net.Health;

/// <summary>
/// Keeps the active prober in step with the live config: every destination of a cluster with a <c>healthCheck</c>
/// is probed, destinations that left the config stop being probed. Runs on config applies, never per request.
/// </summary>
internal sealed class HealthCheckCoordinator : IAsyncDisposable
{
    private readonly ActiveHealthProber _prober;
    private readonly Lock _gate = new();
    private HashSet<DestinationState> _watched = [];
    private bool _disposed;

    private readonly Func<Core.Configuration.UpstreamTlsConfig, Tls.UpstreamTlsOptions?>? _tls;

    public HealthCheckCoordinator(ILoggerFactory loggerFactory, Func<Core.Configuration.UpstreamTlsConfig, Tls.UpstreamTlsOptions?>? tls = null)
    {
        _tls = tls;
        _prober = new ActiveHealthProber(loggerFactory.CreateLogger("Router.Health"));
    }

    public void OnConfigApplied(RoutingSnapshot snapshot)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                // The router has stopped: a config applied now is recorded, but nothing is probed any more.
                return;
            }

            var next = new HashSet<DestinationState>();
            foreach (var cluster in snapshot.Clusters)
            {
                if (cluster.Config.HealthCheck is not { } check)
                {
                    continue;
                }

                var tls = cluster.Config.Tls is { Enabled: true } tlsConfig && _tls is not null ? _tls(tlsConfig) : null;
                foreach (var destination in cluster.Destinations)
                {
                    if (destination.Health is not { } state)
                    {
                        continue;
                    }

                    next.Add(destination);

                    // Watching again with identical settings keeps the running loop (ActiveHealthProber.Watch).
                    _prober.Watch(destination, destination.EndPoint, destination.Address, check.Path, check.IntervalMs, check.TimeoutMs,
                        check.ExpectedStatusMin, check.ExpectedStatusMax, state, tls);
                }
            }

            foreach (var old in _watched)
            {
                if (!next.Contains(old))
                {
                    _prober.Unwatch(old);
                }
            }

            _watched = next;
        }
    }

    public ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _disposed = true;
        }

        return _prober.DisposeAsync();
    }
}
