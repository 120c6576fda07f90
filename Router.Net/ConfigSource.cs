using Router.Core.Configuration;

namespace Router.Net;

/// <summary>
/// Where a router's config comes from: a file, a control plane, the application's own code, or anything an
/// application writes (a database, service discovery). Add sources to <see cref="RouterServerOptions.Sources"/>.
/// </summary>
/// <remarks>
/// A source pushes each config it gets to the target; the router validates it in full, and only a valid config goes
/// live, all at once. A rejected config leaves the previous one serving, so a source never needs to guard against its
/// own mistakes. A source may run on one server at a time.
/// </remarks>
public abstract class ConfigSource
{
    /// <summary>
    /// Feeds configs to <paramref name="target"/> until <paramref name="cancellationToken"/> is cancelled (the server
    /// is stopping), then returns. Apply the initial config, if there is one at hand, before the first real wait: the
    /// server starts its sources before it binds its listeners, so listeners named in that config are bound too.
    /// An exception other than cancellation is logged and ends this source; the router keeps serving.
    /// </summary>
    /// <param name="target">The router to apply configs to.</param>
    /// <param name="cancellationToken">Cancelled when the server stops.</param>
    public abstract Task RunAsync(IConfigTarget target, CancellationToken cancellationToken);
}

/// <summary>What a <see cref="ConfigSource"/> feeds: the router's one validate-compile-swap path, and its state.</summary>
public interface IConfigTarget
{
    /// <summary>The router's state now (live config, last rejection, listeners).</summary>
    RouterState State { get; }

    /// <summary>Validates <paramref name="config"/> in full and, when valid, makes it live at once. Never throws for an invalid config.</summary>
    /// <param name="config">The config.</param>
    /// <param name="source">Where it came from; shown in <see cref="RouterState.Source"/>, logs and <c>/admin/config</c>.</param>
    /// <param name="version">The source's version of this config, when it has one (shown as <see cref="RouterState.Version"/>).</param>
    ApplyResult Apply(RouterConfig config, string source, long? version);

    /// <summary>Parses and validates a UTF-8 JSON config document in full and, when valid, makes it live at once. Never throws for an invalid document.</summary>
    /// <param name="json">The UTF-8 JSON document.</param>
    /// <param name="source">Where it came from; shown in <see cref="RouterState.Source"/>, logs and <c>/admin/config</c>.</param>
    /// <param name="version">The source's version of this config, when it has one (shown as <see cref="RouterState.Version"/>).</param>
    ApplyResult Apply(ReadOnlyMemory<byte> json, string source, long? version);

    /// <summary>
    /// Records that a source could not produce a config (file unreadable, database down). The live config keeps
    /// serving; the failure shows in <see cref="RouterState.LastRejection"/> and the log.
    /// </summary>
    /// <param name="source">The source that failed.</param>
    /// <param name="errors">What went wrong; at least one.</param>
    void ReportFailure(string source, IReadOnlyList<ConfigError> errors);
}
