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

    /// <summary>Like <see cref="WaitAsync"/>, blocking the calling thread (a dedicated accept thread).</summary>
    public void Wait(CancellationToken cancellationToken) => _slots.Wait(cancellationToken);

    /// <summary>Gives back the slot of a closed (or never started) connection.</summary>
    public void Release() => _slots.Release();

    public void Dispose() => _slots.Dispose();
}
