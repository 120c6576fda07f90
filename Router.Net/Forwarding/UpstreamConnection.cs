using System.IO.Pipelines;
using Router.Core.Routing;
using Router.Net.Http1;
using Router.Net.Tls;
using Router.Net.Transport;

namespace Router.Net.Forwarding;

/// <summary>A connection to one destination, reused across requests while the upstream keeps it alive.</summary>
internal sealed class UpstreamConnection
{
    public UpstreamConnection(ITransportConnection connection, UpstreamPool pool)
    {
        Connection = connection;
        Pool = pool;
    }

    public ITransportConnection Connection { get; }

    /// <summary>The TLS settings it was made with; null for plain HTTP. A pool hands it out only under the same settings.</summary>
    public UpstreamTlsOptions? Tls { get; init; }

    public UpstreamPool Pool { get; }

    public DestinationState Destination => Pool.Destination;

    public PipeReader Input => Connection.Input;

    public PipeWriter Output => Connection.Output;

    public HttpResponseHead Response { get; } = new();

    /// <summary>Requests this connection has carried (0 on a fresh connection).</summary>
    public int Uses;

    /// <summary>When it went back to the pool (Environment.TickCount64), for idle eviction.</summary>
    public long IdleSince;

    /// <summary>Time (Environment.TickCount64) from which it is not reused: the upstream said it closes idle connections then.</summary>
    public long ReuseBefore = long.MaxValue;

    /// <summary>
    /// A pooled connection is usable when the upstream has not closed it and sent nothing unasked.
    /// </summary>
    public bool IsReusable() => Connection.IsIdleClean();

    /// <summary>Closes without waiting (pool eviction, drain).</summary>
    public void CloseInBackground() => _ = CloseAsync().AsTask();

    /// <param name="graceful">True: a FIN after everything written (a tunnel both sides ended); false: a reset.</param>
    public async ValueTask CloseAsync(bool graceful = false)
    {
        Response.Release();
        if (!graceful)
        {
            Connection.Abort("upstream closed by router");
        }

        await Connection.DisposeAsync().ConfigureAwait(false);
        Pool.OnClosed();
    }
}
