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

    /// <summary>The data plane's connection pool for this destination, attached lazily by Router.Net.</summary>
    public object? Pool;
}
