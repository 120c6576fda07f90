namespace Router.Net.Transport;

/// <summary>
/// Caps open client connections. At the cap a listener stops accepting (connections wait in the kernel's backlog,
/// then in SYN retries) instead of accepting and failing them; it resumes as soon as a connection closes.
/// Shared by every listener of one router.
/// </summary>
internal sealed class ConnectionGate : IDisposable
{
    private readonly SemaphoreSlim _slots;

    public ConnectionGate(int maxConnections)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnections, 1);
        Max = maxConnections;
        _slots = new SemaphoreSlim(maxConnections, maxConnections);
    }

    public int Max { get; }

    /// <summary>Open connections holding a slot.</summary>
    public int Open => Max - _slots.CurrentCount;

    /// <summary>Waits for a free slot (immediately below the cap). The caller must <see cref="Release"/> it once.</summary>
    public Task WaitAsync(CancellationToken cancellationToken) => _slots.WaitAsync(cancellationToken);

    /// <summary>Takes a free slot without waiting: false at the cap (an epoll loop must not block).</summary>
    public bool TryEnter() => _slots.Wait(0);

    /// <summary>Raised after every <see cref="Release"/>: listeners that stopped at the cap without waiting resume here.</summary>
    public event Action? SlotFreed;

    /// <summary>Gives back the slot of a closed (or never started) connection.</summary>
    public void Release()
    {
        _slots.Release();
        SlotFreed?.Invoke();
    }

    public void Dispose() => _slots.Dispose();
}
