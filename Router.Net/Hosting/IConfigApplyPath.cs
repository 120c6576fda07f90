using Router.Core.Configuration;

namespace Router.Net.Hosting;

/// <summary>
/// The part of the config path a file watcher needs: <see cref="ConfigApplier"/> in the CLI, any public
/// <see cref="IConfigTarget"/> (through <see cref="ConfigTargetApplyPath"/>) when embedded.
/// </summary>
internal interface IConfigApplyPath
{
    ApplyOutcome Apply(ReadOnlySpan<byte> json, string source, long? version = null);

    ApplyOutcome Reject(string source, IReadOnlyList<ConfigError> errors);
}

/// <summary>Adapts a public <see cref="IConfigTarget"/> to the internal config consumers (file watcher, control-plane client).</summary>
internal sealed class ConfigTargetApplyPath : IConfigApplyPath, Router.Net.ControlPlane.IConfigSink
{
    private readonly IConfigTarget _target;

    public ConfigTargetApplyPath(IConfigTarget target) => _target = target;

    public (long? Version, string Hash) Current
    {
        get
        {
            var info = _target.State.Config;
            return info is null ? (null, "") : (info.Version, info.Hash);
        }
    }

    public ApplyOutcome Apply(ReadOnlySpan<byte> json, string source, long? version = null) =>
        ToOutcome(_target.Apply(json.ToArray(), source, version));

    public ApplyOutcome Reject(string source, IReadOnlyList<ConfigError> errors)
    {
        _target.ReportFailure(source, errors);
        return new ApplyOutcome(false, _target.State.Config, errors, "");
    }

    Router.Net.ControlPlane.ConfigApplyResult Router.Net.ControlPlane.IConfigSink.Apply(ReadOnlyMemory<byte> configJson, string source, long? version)
    {
        var result = _target.Apply(configJson, source, version);
        return new Router.Net.ControlPlane.ConfigApplyResult(result.Applied, result.Hash, result.Applied ? version : null, result.Errors);
    }

    private static ApplyOutcome ToOutcome(ApplyResult result) => new(result.Applied, result.Live, result.Errors, result.Hash);
}
