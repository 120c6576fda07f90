using Microsoft.Extensions.Logging.Abstractions;
using Router.Net.Hosting;

namespace Router.Net;

/// <summary>
/// A config file (the <c>router --config</c> JSON format), read at start and reloaded whenever it changes: in-place
/// writes, atomic renames, editor swap files and delete-then-recreate all count. A missing or broken file leaves the
/// live config serving and shows in <see cref="RouterState.LastRejection"/>. Configs show as source <c>file:PATH</c>.
/// </summary>
public sealed class FileConfigSource : ConfigSource
{
    /// <summary>Creates a source for the file at <paramref name="path"/> (relative paths resolve against the current directory now).</summary>
    /// <param name="path">The config file.</param>
    public FileConfigSource(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        FilePath = Path.GetFullPath(path);
    }

    /// <summary>Full path of the watched file.</summary>
    public string FilePath { get; }

    /// <inheritdoc />
    public override async Task RunAsync(IConfigTarget target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        var server = target as RouterServer;
        IConfigApplyPath applyPath = server is not null ? server.Host.Applier : new ConfigTargetApplyPath(target);
        using var watcher = new ConfigFileWatcher(FilePath, applyPath, server?.LoggerFactory ?? NullLoggerFactory.Instance);

        // Watch before the first read, so a write in between is not missed.
        watcher.Start();
        watcher.Reload();
        Func<ApplyOutcome> reload = watcher.Reload;
        if (server is not null)
        {
            // POST /admin/reload re-reads this file.
            server.Host.Reload ??= reload;
        }

        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (server is not null && server.Host.Reload == reload)
            {
                server.Host.Reload = null;
            }
        }
    }
}
