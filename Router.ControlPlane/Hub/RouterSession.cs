using System.Net.WebSockets;
using System.Threading.Channels;
using Router.ControlPlane.Store;
using Router.Core.ControlPlane;

namespace Router.ControlPlane.Hub;

/// <summary>
/// One connected router. Pushes go through a single "latest pending" slot: a version superseded before a slow router
/// took it is never sent, and the router always ends on the newest version. One send loop owns the socket's send side;
/// the hub's receive loop reads the router's frames into <see cref="Received"/>.
/// </summary>
internal sealed class RouterSession(long id, string nodeId, WebSocket socket, FrameBuffer received)
{
    private readonly Lock _gate = new();
    private readonly Channel<bool> _signal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1)
    {
        FullMode = BoundedChannelFullMode.DropWrite,
        SingleReader = true,
    });

    private StoredConfig? _pending;
    private long _highestOffered;

    public long Id { get; } = id;

    public string NodeId { get; } = nodeId;

    /// <summary>The buffer the router's frames are received into (owned by the hub's receive loop).</summary>
    public FrameBuffer Received { get; } = received;

    /// <summary>Queues a version unless this router already has (or was offered) it or a newer one. Versions only grow.</summary>
    public void Offer(StoredConfig config)
    {
        lock (_gate)
        {
            if (config.Version <= _highestOffered)
            {
                return;
            }

            _highestOffered = config.Version;
            _pending = config;
        }

        _signal.Writer.TryWrite(true);
    }

    /// <summary>Records that the router already runs this version (its hello carried the current hash).</summary>
    public void MarkAlreadyHas(long version)
    {
        lock (_gate)
        {
            _highestOffered = Math.Max(_highestOffered, version);
        }
    }

    /// <summary>Sends pending configs and periodic heartbeats until cancelled.</summary>
    public async Task RunSendLoopAsync(TimeSpan heartbeatInterval, Func<long?> currentVersion, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(heartbeatInterval);
        var tick = timer.WaitForNextTickAsync(ct).AsTask();
        var ready = _signal.Reader.WaitToReadAsync(ct).AsTask();
        while (true)
        {
            await Task.WhenAny(tick, ready).ConfigureAwait(false);
            if (ready.IsCompleted)
            {
                await ready.ConfigureAwait(false);
                _signal.Reader.TryRead(out _);
                StoredConfig? next;
                lock (_gate)
                {
                    next = _pending;
                    _pending = null;
                }

                if (next is not null)
                {
                    await socket.SendAsync(next.Frame, WebSocketMessageType.Text, endOfMessage: true, ct).ConfigureAwait(false);
                }

                ready = _signal.Reader.WaitToReadAsync(ct).AsTask();
            }

            if (tick.IsCompleted)
            {
                await tick.ConfigureAwait(false);
                var frame = ControlPlaneCodec.Serialize(new HeartbeatMessage(currentVersion()));
                await socket.SendAsync(frame, WebSocketMessageType.Text, endOfMessage: true, ct).ConfigureAwait(false);
                tick = timer.WaitForNextTickAsync(ct).AsTask();
            }
        }
    }
}
