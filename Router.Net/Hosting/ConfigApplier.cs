using Microsoft.Extensions.Logging;
using Router.Core.Configuration;
using Router.Core.Routing;
using Router.Net.ControlPlane;
using Router.Net.Forwarding;

namespace Router.Net.Hosting;

/// <summary>The outcome of applying a config: live with its info, or rejected with every error.</summary>
internal sealed record ApplyOutcome(bool Applied, SnapshotInfo? Info, IReadOnlyList<ConfigError> Errors, string Hash);

/// <summary>The last rejected config, shown by <c>GET /admin/config</c>.</summary>
internal sealed record ApplyFailure(DateTimeOffset At, string Source, IReadOnlyList<ConfigError> Errors);

/// <summary>
/// The one validate-compile-swap path every config source goes through (file, SIGHUP, admin reload, control plane,
/// cache, embedding API). Applies, and the handlers of <see cref="Applied"/>, are serialised; requests never wait for them.
/// </summary>
internal sealed partial class ConfigApplier : IConfigSink, IConfigApplyPath
{
    private readonly RoutingTable _table;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private long _generation;
    private ApplyFailure? _lastFailure;

    public ConfigApplier(RoutingTable table, ILoggerFactory loggerFactory)
    {
        _table = table;
        _logger = loggerFactory.CreateLogger("Router.Config");
    }

    /// <summary>Raised after a config went live, with the new and the replaced snapshot.</summary>
    public event Action<RoutingSnapshot, RoutingSnapshot?>? Applied;

    /// <summary>Raised when a config was rejected (last-known-good keeps serving).</summary>
    public event Action<ApplyFailure>? Rejected;
    /// <summary>
    /// Raised when a config identical to the live one was applied again (a touched file, SIGHUP, a repeated push):
    /// nothing was swapped, but files the config names (certificates) may have changed on disk.
    /// </summary>
    public event Action<RoutingSnapshot>? Reaffirmed;

    /// <summary>
    /// Checks beyond the config document, run after it validated and before it is compiled (certificate and key
    /// files can be read and match). Any error rejects the config like a validation error: the live one stays.
    /// </summary>
    public Func<RouterConfig, IReadOnlyList<ConfigError>>? ExtraValidation { get; set; }

    public RoutingSnapshot? Current => _table.Current;

    public ApplyFailure? LastFailure => Volatile.Read(ref _lastFailure);

    (long? Version, string Hash) IConfigSink.Current
    {
        get
        {
            var info = _table.Current?.Info;
            return info is null ? (null, "") : (info.Version, info.Hash);
        }
    }

    ConfigApplyResult IConfigSink.Apply(ReadOnlyMemory<byte> configJson, string source, long? version)
    {
        var outcome = Apply(configJson.Span, source, version);
        return new ConfigApplyResult(outcome.Applied, outcome.Hash, outcome.Applied ? version : null, outcome.Errors);
    }

    public ApplyOutcome Apply(ReadOnlySpan<byte> json, string source, long? version = null)
    {
        var loaded = ConfigLoader.Load(json);
        return Apply(loaded, source, version);
    }

    public ApplyOutcome Apply(RouterConfig config, string source, long? version = null) =>
        Apply(ConfigLoader.Validate(config), source, version);

    /// <summary>Records a failure that happened before there was a document to validate (file missing, unreadable).</summary>
    public ApplyOutcome Reject(string source, IReadOnlyList<ConfigError> errors)
    {
        var failure = new ApplyFailure(DateTimeOffset.UtcNow, source, errors);
        Volatile.Write(ref _lastFailure, failure);
        Rejected?.Invoke(failure);
        var current = _table.Current;
        if (current is null)
        {
            // At boot there is no last-known-good yet: say so rather than promise one.
            LogRejectedNothingLive(_logger, source, errors.Count, string.Join("; ", errors));
        }
        else
        {
            LogRejected(_logger, source, errors.Count, string.Join("; ", errors));
        }

        return new ApplyOutcome(false, current?.Info, errors, "");
    }

    private ApplyOutcome Apply(ConfigLoadResult loaded, string source, long? version)
    {
        if (!loaded.IsValid)
        {
            return Reject(source, loaded.Errors);
        }

        if (ExtraValidation?.Invoke(loaded.Config!) is { Count: > 0 } extraErrors)
        {
            return Reject(source, extraErrors);
        }

        RoutingSnapshot next;
        RoutingSnapshot? previous;
        lock (_gate)
        {
            previous = _table.Current;
            if (previous is not null && previous.Info.Hash == loaded.Hash && previous.Info.Version == version)
            {
                // Same content: nothing to swap (an editor touching the file, a repeated push).
                next = previous;
            }
            else
            {
                var info = new SnapshotInfo(_generation + 1, loaded.Hash, source, DateTimeOffset.UtcNow, version);
                next = RoutingSnapshot.Compile(loaded.Config!, info, previous);
                _generation++;
                _table.Swap(next);
            }

            // Still under the lock: what follows a swap (global limit, health probes, certificates, the embedding
            // API's event) must happen in swap order, or two concurrent applies could leave the older config's
            // settings in force under the newer config.
            if (ReferenceEquals(next, previous))
            {
                Reaffirmed?.Invoke(next);
                return new ApplyOutcome(true, next.Info, [], loaded.Hash);
            }

            if (previous is not null)
            {
                foreach (var removed in next.RemovedSince(previous))
                {
                    (Volatile.Read(ref removed.Pool) as UpstreamPool)?.Drain();
                }
            }

            LogApplied(_logger, next.Info.Generation, loaded.Hash, source);
            Applied?.Invoke(next, previous);
        }

        return new ApplyOutcome(true, next.Info, [], loaded.Hash);
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Config generation {Generation} ({Hash}) from {Source} is live")]
    private static partial void LogApplied(ILogger logger, long generation, string hash, string source);

    [LoggerMessage(EventId = 301, Level = LogLevel.Error, Message = "Config from {Source} rejected with {Count} error(s), last-known-good keeps serving: {Errors}")]
    private static partial void LogRejected(ILogger logger, string source, int count, string errors);

    [LoggerMessage(EventId = 302, Level = LogLevel.Error, Message = "Config from {Source} rejected with {Count} error(s), and no config is live yet: {Errors}")]
    private static partial void LogRejectedNothingLive(ILogger logger, string source, int count, string errors);
}
