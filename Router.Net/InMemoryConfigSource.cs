using Router.Core.Configuration;

namespace Router.Net;

/// <summary>
/// A config source the application drives from code: call <see cref="Update"/> with a new <see cref="RouterConfig"/>
/// whenever it changes. Its configs show as source <c>memory</c> (or the name given).
/// </summary>
public sealed class InMemoryConfigSource : ConfigSource
{
    private readonly Lock _gate = new();
    private RouterConfig? _config;
    private IConfigTarget? _target;

    /// <summary>Creates the source, optionally with the config to apply when the server starts.</summary>
    /// <param name="initial">Applied when the server starts; null to start without one.</param>
    /// <param name="name">Source name shown in <see cref="RouterState.Source"/> and logs.</param>
    public InMemoryConfigSource(RouterConfig? initial = null, string name = "memory")
    {
        ArgumentNullException.ThrowIfNull(name);
        _config = initial;
        Name = name;
    }

    /// <summary>Source name shown in <see cref="RouterState.Source"/> and logs.</summary>
    public string Name { get; }

    /// <summary>The config most recently given (valid or not).</summary>
    public RouterConfig? Current
    {
        get
        {
            lock (_gate)
            {
                return _config;
            }
        }
    }

    /// <summary>
    /// Gives the router a new config. While the server runs it is validated and, when valid, live before this returns.
    /// Before the server starts it is validated and kept for the start; the result is then not applied, with every
    /// error if it is invalid.
    /// </summary>
    /// <param name="config">The new config.</param>
    public ApplyResult Update(RouterConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        lock (_gate)
        {
            _config = config;
            if (_target is not null)
            {
                return _target.Apply(config, Name, null);
            }
        }

        var validated = ConfigLoader.Validate(config);
        return new ApplyResult(false, validated.Hash, null, validated.Errors);
    }

    /// <inheritdoc />
    public override async Task RunAsync(IConfigTarget target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        lock (_gate)
        {
            if (_target is not null)
            {
                throw new InvalidOperationException("this source already feeds a router");
            }

            _target = target;
            if (_config is not null)
            {
                target.Apply(_config, Name, null);
            }
        }

        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            lock (_gate)
            {
                _target = null;
            }
        }
    }
}
