using Microsoft.Extensions.Logging;
using Router.Core.Configuration;

namespace Router.Net.Hosting;

/// <summary>
/// Watches a config file's directory (so atomic renames, in-place writes, editor swap files, delete-then-recreate and
/// a swapped Kubernetes <c>..data</c> symlink all count) and reloads after a short debounce. A missing or broken file leaves the last-known-good config serving.
/// </summary>
internal sealed partial class ConfigFileWatcher : IDisposable
{
    // Editors and `cp` write in several steps; 50 ms lets a burst of events settle into one reload.
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(50);

    private readonly string _path;
    private readonly string _fileName;
    private readonly IConfigApplyPath _applier;
    private readonly ILogger _logger;
    private readonly FileSystemWatcher _watcher;
    private readonly Timer _debounce;
    private readonly Lock _reloadGate = new();

    public ConfigFileWatcher(string path, IConfigApplyPath applier, ILoggerFactory loggerFactory)
    {
        _path = Path.GetFullPath(path);
        _fileName = Path.GetFileName(_path);
        _applier = applier;
        _logger = loggerFactory.CreateLogger("Router.ConfigFile");
        _debounce = new Timer(static state => ((ConfigFileWatcher)state!).ReloadFromTimer(), this, Timeout.Infinite, Timeout.Infinite);
        _watcher = new FileSystemWatcher(Path.GetDirectoryName(_path)!)
        {
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
            IncludeSubdirectories = false,
        };
        _watcher.Changed += OnEvent;
        _watcher.Created += OnEvent;
        _watcher.Deleted += OnEvent;
        _watcher.Renamed += OnRenamed;
        _watcher.Error += OnError;
    }

    public string FilePath => _path;

    /// <summary>Raised after every reload attempt the watcher made, with its outcome.</summary>
    public event Action<ApplyOutcome>? Reloaded;

    public void Start() => _watcher.EnableRaisingEvents = true;

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
        _watcher.Dispose();
        _debounce.Dispose();
    }

    [LoggerMessage(EventId = 310, Level = LogLevel.Warning, Message = "Config file watcher error; reloading to resynchronise")]
    private static partial void LogWatcherError(ILogger logger, Exception ex);
}
