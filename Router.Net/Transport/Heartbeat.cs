namespace Router.Net.Transport;

/// <summary>
/// One timer for all connections (as Kestrel's heartbeat): timeouts cost a field write per request instead of a
/// timer or CancellationTokenSource each. Resolution is the tick period. Owners of many targets (the proxy runtime
/// and its connections) register one callback that walks their own registry, so a connection is registered once.
/// </summary>
internal sealed class Heartbeat : IDisposable
{
    private readonly List<Action<long>> _callbacks = [];
    private readonly Timer _timer;
    private int _running;

    public Heartbeat(TimeSpan period)
    {
        _timer = new Timer(static state => ((Heartbeat)state!).Tick(), this, period, period);
    }

    /// <summary>Adds a callback run on every tick (pool eviction and the like).</summary>
    public void OnTick(Action<long> callback)
    {
        lock (_callbacks)
        {
            _callbacks.Add(callback);
        }
    }

    private void Tick()
    {
        // Skip a tick rather than overlap when the previous one is still running.
        if (Interlocked.Exchange(ref _running, 1) != 0)
        {
            return;
        }

        try
        {
            long now = Environment.TickCount64;
            Action<long>[] callbacks;
            lock (_callbacks)
            {
                callbacks = [.. _callbacks];
            }

            foreach (var callback in callbacks)
            {
                callback(now);
            }
        }
        finally
        {
            Volatile.Write(ref _running, 0);
        }
    }

    public void Dispose() => _timer.Dispose();
}
