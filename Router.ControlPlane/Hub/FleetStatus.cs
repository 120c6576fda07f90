using Router.Core.Configuration;

namespace Router.ControlPlane.Hub;

/// <summary>What the control plane knows about each router that ever connected (since this CP process started).</summary>
internal sealed class FleetStatus
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Entry> _routers = new(StringComparer.Ordinal);

    /// <summary>Raised after any router's status changed (outside the lock). Lets tests and watchers wait without polling.</summary>
    public event Action? Changed;

    public void Connected(long sessionId, string nodeId, string routerVersion, string? remoteAddress, long? appliedVersion, string? appliedHash)
    {
        lock (_gate)
        {
            if (!_routers.TryGetValue(nodeId, out var entry))
            {
                entry = new Entry { NodeId = nodeId };
                _routers.Add(nodeId, entry);
            }

            // A reconnect may arrive before the old session is noticed dead; the newest session owns the entry.
            entry.SessionId = sessionId;
            entry.Connected = true;
            entry.RouterVersion = routerVersion;
            entry.RemoteAddress = remoteAddress;
            entry.LastSeen = DateTimeOffset.UtcNow;
            entry.AppliedVersion = appliedVersion;
            entry.AppliedHash = string.IsNullOrEmpty(appliedHash) ? null : appliedHash;
        }

        Changed?.Invoke();
    }

    public void Seen(long sessionId, string nodeId) => Update(sessionId, nodeId, static (_, _) => { }, 0);

    public void Acked(long sessionId, string nodeId, long version, string hash) =>
        Update(sessionId, nodeId, static (e, a) => { e.AppliedVersion = a.version; e.AppliedHash = a.hash; }, (version, hash));

    public void Nacked(long sessionId, string nodeId, long version, IReadOnlyList<ConfigError> errors) =>
        Update(sessionId, nodeId, static (e, a) => { e.LastNackVersion = a.version; e.LastNackErrors = a.errors; }, (version, errors));

    public void Disconnected(long sessionId, string nodeId) =>
        Update(sessionId, nodeId, static (e, _) => e.Connected = false, 0);

    public IReadOnlyList<RouterStatusDto> Snapshot()
    {
        lock (_gate)
        {
            var list = new List<RouterStatusDto>(_routers.Count);
            foreach (var e in _routers.Values)
            {
                list.Add(new RouterStatusDto(
                    e.NodeId, e.Connected, e.LastSeen, e.AppliedVersion, e.AppliedHash, e.LastNackVersion,
                    e.LastNackErrors, e.RemoteAddress, e.RouterVersion));
            }

            list.Sort(static (a, b) => string.CompareOrdinal(a.NodeId, b.NodeId));
            return list;
        }
    }

    private void Update<TArg>(long sessionId, string nodeId, Action<Entry, TArg> update, TArg arg)
    {
        lock (_gate)
        {
            // Frames from a superseded session of the same router are ignored.
            if (!_routers.TryGetValue(nodeId, out var entry) || entry.SessionId != sessionId)
            {
                return;
            }

            entry.LastSeen = DateTimeOffset.UtcNow;
            update(entry, arg);
        }

        Changed?.Invoke();
    }

    private sealed class Entry
    {
        public required string NodeId { get; init; }

        public long SessionId { get; set; }

        public bool Connected { get; set; }

        public string RouterVersion { get; set; } = "";

        public string? RemoteAddress { get; set; }

        public DateTimeOffset LastSeen { get; set; }

        public long? AppliedVersion { get; set; }

        public string? AppliedHash { get; set; }

        public long? LastNackVersion { get; set; }

        public IReadOnlyList<ConfigError>? LastNackErrors { get; set; }
    }
}

/// <summary>One router in <c>GET /api/routers</c>.</summary>
internal sealed record RouterStatusDto(
    string NodeId,
    bool Connected,
    DateTimeOffset LastSeen,
    long? AppliedVersion,
    string? AppliedHash,
    long? LastNackVersion,
    IReadOnlyList<ConfigError>? LastNackErrors,
    string? RemoteAddress,
    string RouterVersion);
