using Microsoft.Extensions.Logging;
using Router.Core.Configuration;

namespace Router.Net.Hosting;

/// <summary>
/// Watches a config file's directory (so atomic renames, in-place writes, editor swap files, delete-then-recreate and
/// a swapped Kubernetes <c>..data</c> symlink all count) and reloads after a short debounce. The directory's entry in
/// its parent is watched too: when the directory is renamed, replaced or deleted and re-created, the watch moves to
/// whatever directory has the path now. A missing or broken file leaves the last-known-good config serving.
/// </summary>
internal sealed partial class ConfigFileWatcher : IDisposable
{
    // Editors and `cp` write in several steps; 50 ms lets a burst of events settle into one reload.
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(50);

    private readonly string _path;
    private readonly string _fileName;
    private readonly IConfigApplyPath _applier;
    private readonly ILogger _logger;
    private readonly string _directory;
    private readonly FileSystemWatcher? _parentWatcher;
    private readonly Timer _debounce;
    private readonly Lock _reloadGate = new();
    private readonly Lock _watchGate = new();
    private FileSystemWatcher? _watcher;
    private bool _started;
    private bool _disposed;

    public ConfigFileWatcher(string path, IConfigApplyPath applier, ILoggerFactory loggerFactory)
    {
        _path = Path.GetFullPath(path);
        _fileName = Path.GetFileName(_path);
        _applier = applier;
        _logger = loggerFactory.CreateLogger("Router.ConfigFile");
        _debounce = new Timer(static state => ((ConfigFileWatcher)state!).ReloadFromTimer(), this, Timeout.Infinite, Timeout.Infinite);
        _directory = Path.GetDirectoryName(_path)!;

        // A watch follows the directory's inode, not its path: after `mv conf conf.old` or `rm -rf conf` it would
        // watch the old directory, or nothing, for good. The parent's entry for it says when to watch again.
        if (Path.GetDirectoryName(_directory) is { } parent && Directory.Exists(parent))
        {
            _parentWatcher = new FileSystemWatcher(parent)
            {
                NotifyFilter = NotifyFilters.DirectoryName | NotifyFilters.FileName,
                IncludeSubdirectories = false,
            };
            _parentWatcher.Created += OnParentEvent;
            _parentWatcher.Deleted += OnParentEvent;
            _parentWatcher.Renamed += OnParentEvent;
            _parentWatcher.Error += OnError;
        }
    }

    public string FilePath => _path;

    /// <summary>Raised after every reload attempt the watcher made, with its outcome.</summary>
    public event Action<ApplyOutcome>? Reloaded;

    public void Start()
    {
        lock (_watchGate)
        {
            _started = true;
            try
            {
                _parentWatcher?.EnableRaisingEvents = true;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // E.g. the inotify instance limit: the file is still watched, only a replaced directory is not noticed.
                LogNotWatched(_logger, Path.GetDirectoryName(_directory)!, ex.Message);
            }

            WatchDirectory();
        }
    }

    /// <summary>(Re)creates the watch on whatever directory is at the file's directory path now; none while it is missing.</summary>
    private void WatchDirectory()
    {
        lock (_watchGate)
        {
            _watcher?.Dispose();
            _watcher = null;
            if (!_started || _disposed)
            {
                return;
            }

            FileSystemWatcher? watcher = null;
            try
            {
                watcher = new FileSystemWatcher(_directory)
                {
                    NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
                    IncludeSubdirectories = false,
                };
                watcher.Changed += OnEvent;
                watcher.Created += OnEvent;
                watcher.Deleted += OnEvent;
                watcher.Renamed += OnRenamed;
                watcher.Error += OnError;
                watcher.EnableRaisingEvents = true;
                _watcher = watcher;
            }
            catch (Exception ex) when (ex is ArgumentException or IOException or UnauthorizedAccessException)
            {
                // Missing (or gone again): watched from its parent until it is back; the reload says what is wrong.
                watcher?.Dispose();
                LogNotWatched(_logger, _directory, ex.Message);
            }
        }
    }

    /// <summary>Created, deleted or renamed (to or from) in the parent: the directory's own entry moves the watch.</summary>
    private void OnParentEvent(object sender, FileSystemEventArgs e)
    {
        string name = Path.GetFileName(_directory);
        if (string.Equals(e.Name, name, StringComparison.Ordinal)
            || (e is RenamedEventArgs renamed && string.Equals(renamed.OldName, name, StringComparison.Ordinal)))
        {
            WatchDirectory();
            _debounce.Change(Debounce, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Reads and applies the file now (boot, SIGHUP, POST /admin/reload).</summary>
    public ApplyOutcome Reload()
    {
        lock (_reloadGate)
        {
            string source = "file:" + _path;
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(_path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return _applier.Reject(source, [new ConfigError("$", $"cannot read {_path}: {ex.Message}")]);
            }

            return _applier.Apply(bytes, source);
        }
    }

    private void OnEvent(object sender, FileSystemEventArgs e)
    {
        if (Concerns(e.Name))
        {
            _debounce.Change(Debounce, Timeout.InfiniteTimeSpan);
        }
    }

    private void OnRenamed(object sender, RenamedEventArgs e)
    {
        if (Concerns(e.Name) || Concerns(e.OldName))
        {
            _debounce.Change(Debounce, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>
    /// True for the file's own name and, when the file is a symlink into its own directory, for the first name its
    /// target goes through: a Kubernetes ConfigMap update renames a new <c>..data</c> symlink over the old one and
    /// never touches <c>config.json -> ..data/config.json</c> itself.
    /// </summary>
    private bool Concerns(string? name) =>
        name is not null && (string.Equals(name, _fileName, StringComparison.Ordinal) || string.Equals(name, LinkedName(), StringComparison.Ordinal));

    /// <summary>The entry of the watched directory the file's symlink target starts with; null when it is none.</summary>
    private string? LinkedName()
    {
        string? target;
        try
        {
            target = new FileInfo(_path).LinkTarget;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        if (target is null)
        {
            return null;
        }

        string relative = Path.GetRelativePath(Path.GetDirectoryName(_path)!, Path.Combine(Path.GetDirectoryName(_path)!, target));
        int separator = relative.IndexOf(Path.DirectorySeparatorChar, StringComparison.Ordinal);
        string first = separator < 0 ? relative : relative[..separator];
        return first is "." or ".." || Path.IsPathRooted(first) ? null : first;
    }

    private void OnError(object sender, ErrorEventArgs e)
    {
        // Buffer overflow: events were lost, so reload to be sure we converge on what is on disk.
        LogWatcherError(_logger, e.GetException());
        _debounce.Change(Debounce, Timeout.InfiniteTimeSpan);
    }

    private void ReloadFromTimer()
    {
        var outcome = Reload();
        Reloaded?.Invoke(outcome);
    }

    public void Dispose()
    {
        lock (_watchGate)
        {
            _disposed = true;
            _watcher?.Dispose();
            _watcher = null;
        }

        _parentWatcher?.Dispose();
        _debounce.Dispose();
    }

    [LoggerMessage(EventId = 310, Level = LogLevel.Warning, Message = "Config file watcher error; reloading to resynchronise")]
    private static partial void LogWatcherError(ILogger logger, Exception ex);

    [LoggerMessage(EventId = 311, Level = LogLevel.Warning, Message = "Cannot watch {Directory} for config changes: {Reason}")]
    private static partial void LogNotWatched(ILogger logger, string directory, string reason);
}
