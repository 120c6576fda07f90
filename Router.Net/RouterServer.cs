using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Router.Core.Configuration;
using Router.Core.Routing;
using Router.Net.Hosting;

namespace Router.Net;

/// <summary>
/// The router's proxy core, hosted inside an application: listeners, the live routing table and the config path.
/// Create it with <see cref="RouterServerOptions"/>, give it a config (through <see cref="Apply(RouterConfig)"/> or a
/// <see cref="ConfigSource"/>), <see cref="StartAsync"/> it, and <see cref="StopAsync"/> or dispose it when done.
/// </summary>
/// <remarks>
/// Every config, whatever its source, goes through the same path as the <c>router</c> command's: validated in full
/// (every error reported), compiled, and swapped in at once; requests already running finish on the config they
/// started on. Members are thread-safe. After a stop, <see cref="Apply(RouterConfig)"/> still validates and records a
/// config (it shows in <see cref="State"/>), but nothing serves or health-checks it.
/// </remarks>
public sealed partial class RouterServer : IConfigTarget, IAsyncDisposable
{
    private const string ApiSource = "api";

    private readonly RouterHost _host;
    private readonly ConfigSource[] _sources;
    private readonly TimeSpan _defaultDrainTimeout;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _sourcesStopping = new();
    private Task[] _sourceTasks = [];
    private Task? _stopping;
    private int _phase; // 0 created, 1 running, 2 stopping or stopped

    /// <summary>Creates a stopped server. Nothing is bound until <see cref="StartAsync"/>.</summary>
    /// <param name="options">Listeners, limits, sources, logging.</param>
    public RouterServer(RouterServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var hostOptions = new RouterHostOptions
        {
            Admin = options.Admin,
            Limits = options.Limits.ToHttpLimits(),
            DrainTimeout = options.DrainTimeout,
        };
        hostOptions.Listen.AddRange(options.Listen);
        LoggerFactory = options.LoggerFactory ?? NullLoggerFactory.Instance;
        _logger = LoggerFactory.CreateLogger("Router.Server");
        _host = new RouterHost(hostOptions, LoggerFactory);
        _host.Applier.Applied += (next, _) => ConfigApplied?.Invoke(this, next.Info);
        _sources = [.. options.Sources];
        _defaultDrainTimeout = options.DrainTimeout;
    }

    /// <summary>
    /// Raised after a config went live, with its info. Runs on the thread that applied it, after the swap, in the order
    /// configs went live (an apply on another thread waits for it): keep it short, and don't wait in it for another
    /// thread's apply.
    /// </summary>
    public event EventHandler<SnapshotInfo>? ConfigApplied;

    /// <summary>The router's state now: live config, last rejection, listeners, open connections.</summary>
    public RouterState State
    {
        get
        {
            var failure = _host.Applier.LastFailure;
            bool started = Volatile.Read(ref _phase) >= 1;
            return new RouterState
            {
                IsRunning = Volatile.Read(ref _phase) == 1,
                Config = _host.Table.Current?.Info,
                LastRejection = failure is null ? null : new ConfigRejection(failure.At, failure.Source, failure.Errors),
                ListenEndPoints = started ? _host.ListenEndPoints : [],
                AdminEndPoint = started ? _host.AdminEndPoint : null,
                OpenConnections = _host.Runtime.OpenConnections,
            };
        }
    }

    internal RouterHost Host => _host;

    internal ILoggerFactory LoggerFactory { get; }

    /// <summary>
    /// Starts the config sources (each applies its initial config, if it has one at hand), then binds the listeners
    /// from the options and from the live config. Requests that arrive before any config is live get 404.
    /// </summary>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <exception cref="InvalidOperationException">The server was already started or stopped.</exception>
    /// <exception cref="IOException">A listener could not be bound (the message names its address, e.g. a port already
    /// in use); nothing is left running, every port this start bound is free again, and the server is stopped.</exception>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            if (_phase != 0)
            {
                throw new InvalidOperationException("the router server was already started");
            }

            _phase = 1;
        }

        var tasks = new Task[_sources.Length];
        for (int i = 0; i < _sources.Length; i++)
        {
            tasks[i] = RunSourceAsync(_sources[i], _sourcesStopping.Token);
        }

        _sourceTasks = tasks;
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            _host.Start();
        }
        catch
        {
            // Release whatever this start bound (the admin listener, earlier proxy listeners) before the caller hears of it.
            await StopAsync(TimeSpan.Zero, CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        LogStarted(_logger, _host.ListenEndPoints.Count, _sources.Length);
    }

    /// <summary>Validates <paramref name="config"/> in full and, when valid, makes it live at once (source <c>api</c>).</summary>
    /// <param name="config">The config.</param>
    /// <returns>Applied with the live config's info, or not applied with every error (the previous config keeps serving).</returns>
    public ApplyResult Apply(RouterConfig config) => Apply(config, ApiSource, null);

    /// <summary>Parses and validates a UTF-8 JSON config document in full and, when valid, makes it live at once (source <c>api</c>).</summary>
    /// <param name="json">The UTF-8 JSON document (the <c>router --config</c> file format).</param>
    /// <returns>Applied with the live config's info, or not applied with every error (the previous config keeps serving).</returns>
    public ApplyResult Apply(ReadOnlyMemory<byte> json) => Apply(json, ApiSource, null);

    /// <inheritdoc />
    public ApplyResult Apply(RouterConfig config, string source, long? version)
    {
        ArgumentNullException.ThrowIfNull(source);
        return ToResult(_host.Applier.Apply(config, source, version));
    }

    /// <inheritdoc />
    public ApplyResult Apply(ReadOnlyMemory<byte> json, string source, long? version)
    {
        ArgumentNullException.ThrowIfNull(source);
        return ToResult(_host.Applier.Apply(json.Span, source, version));
    }

    /// <inheritdoc />
    public void ReportFailure(string source, IReadOnlyList<ConfigError> errors)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(errors);
        _host.Applier.Reject(source, errors);
    }

    /// <summary>
    /// Stops the config sources and the listeners, lets in-flight requests finish for up to
    /// <paramref name="drainTimeout"/> (idle keep-alive connections close at once, busy ones after their current
    /// response), then closes what is left. Calling it again returns the same stop.
    /// </summary>
    /// <param name="drainTimeout">How long in-flight requests get.</param>
    /// <param name="cancellationToken">Cancel to cut the drain short: open connections are closed at once.</param>
    public Task StopAsync(TimeSpan drainTimeout, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(drainTimeout, TimeSpan.Zero);
        Task stopping;
        lock (_gate)
        {
            if (_stopping is null)
            {
                bool started = _phase == 1;
                _phase = 2;
                _stopping = StopCoreAsync(started, drainTimeout, cancellationToken);
            }

            stopping = _stopping;
        }

        return stopping;
    }

    /// <summary>Stops the server (if running) with the options' <see cref="RouterServerOptions.DrainTimeout"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync(_defaultDrainTimeout, CancellationToken.None).ConfigureAwait(false);
        _sourcesStopping.Dispose();
    }

    private async Task StopCoreAsync(bool started, TimeSpan drainTimeout, CancellationToken cancellationToken)
    {
        await _sourcesStopping.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_sourceTasks).ConfigureAwait(false);
        if (!started)
        {
            // Nothing is bound, but the host's timer and meter exist from construction: release them too.
            await _host.StopAsync(TimeSpan.Zero, CancellationToken.None).ConfigureAwait(false);
            return;
        }

        LogStopping(_logger, drainTimeout);
        var stop = _host.StopAsync(drainTimeout, CancellationToken.None);
        try
        {
            await stop.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Drain cut short: close every connection now, then let the stop finish.
            await _host.Runtime.DrainAsync(TimeSpan.Zero, CancellationToken.None).ConfigureAwait(false);
            await stop.ConfigureAwait(false);
        }

        LogStopped(_logger);
    }

    private async Task RunSourceAsync(ConfigSource source, CancellationToken stopping)
    {
        try
        {
            await source.RunAsync(this, stopping).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // The server is stopping: the expected way for a source to end.
        }
        catch (Exception ex)
        {
            LogSourceFailed(_logger, source.GetType().Name, ex);
        }
    }

    private static ApplyResult ToResult(ApplyOutcome outcome) =>
        new(outcome.Applied, outcome.Hash, outcome.Info, outcome.Errors);

    [LoggerMessage(EventId = 450, Level = LogLevel.Information, Message = "Router server started: {Listeners} listener(s), {Sources} config source(s)")]
    private static partial void LogStarted(ILogger logger, int listeners, int sources);

    [LoggerMessage(EventId = 451, Level = LogLevel.Information, Message = "Router server stopping: draining in-flight requests for up to {Timeout}")]
    private static partial void LogStopping(ILogger logger, TimeSpan timeout);

    [LoggerMessage(EventId = 452, Level = LogLevel.Information, Message = "Router server stopped")]
    private static partial void LogStopped(ILogger logger);

    [LoggerMessage(EventId = 453, Level = LogLevel.Error, Message = "Config source {Source} failed and stopped; the live config keeps serving")]
    private static partial void LogSourceFailed(ILogger logger, string source, Exception ex);
}
