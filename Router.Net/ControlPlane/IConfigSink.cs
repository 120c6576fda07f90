using Router.Core.Configuration;

namespace Router.Net.ControlPlane;

/// <summary>
/// Where a config document goes to become live: validate, compile, swap. Implemented by the data plane;
/// every config source (file, control plane, cache) calls it.
/// </summary>
internal interface IConfigSink
{
    /// <summary>Validates and, when valid, makes the config live. Never throws for an invalid document.</summary>
    /// <param name="configJson">UTF-8 JSON config document.</param>
    /// <param name="source">Where it came from, e.g. <c>control-plane</c>, <c>file</c>, <c>cache</c>.</param>
    /// <param name="version">Control-plane version, when the source has one.</param>
    ConfigApplyResult Apply(ReadOnlyMemory<byte> configJson, string source, long? version);

    /// <summary>The live config's version (null when it has none) and hash (empty when nothing is live).</summary>
    (long? Version, string Hash) Current { get; }
}

/// <summary>The outcome of <see cref="IConfigSink.Apply"/>.</summary>
/// <param name="Applied">True when the config is now live (or already was: same hash).</param>
/// <param name="Hash">Hash of the document; empty when it did not validate.</param>
/// <param name="Version">The version now live.</param>
/// <param name="Errors">Every validation error when not applied.</param>
internal sealed record ConfigApplyResult(bool Applied, string Hash, long? Version, IReadOnlyList<ConfigError> Errors);
