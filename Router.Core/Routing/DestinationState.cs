using System.Net;

namespace Router.Core.Routing;

/// <summary>
/// Runtime state of one upstream destination. Carried over across config swaps while the destination
/// stays in its cluster, so pools, health and breaker state survive a reload.
/// </summary>
internal sealed class DestinationState
{
    public DestinationState(string clusterId, string address, EndPoint endPoint)
    {
        ClusterId = clusterId;
        Address = address;
        EndPoint = endPoint;
    }

    public string ClusterId { get; }

    public string Address { get; }

    public EndPoint EndPoint { get; }

    /// <summary>Requests in flight to this destination (Interlocked).</summary>
    public int InFlight;

    // Stub until health and breaker state land: the resilience work replaces the setter with real state.
    private volatile bool _isAvailable = true;

    /// <summary>
    /// Whether the load balancer may pick this destination (healthy and breaker closed). Read without a lock.
    /// </summary>
    public bool IsAvailable
    {
        get => _isAvailable;
        set => _isAvailable = value;
    }

    /// <summary>The data plane's connection pool for this destination, attached lazily by Router.Net.</summary>
    public object? Pool;
}
