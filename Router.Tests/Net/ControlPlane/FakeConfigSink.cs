using NUnit.Framework;
using Router.Core.Configuration;
using Router.Net.ControlPlane;

namespace Router.Tests.Net.ControlPlane;

/// <summary>
/// Stands in for the data plane: validates with the real loader, remembers what is live, and lets tests await a
/// version. With <see cref="RejectWith"/> set it refuses every config with those errors.
/// </summary>
internal sealed class FakeConfigSink : IConfigSink
{
    private readonly Lock _gate = new();
    private readonly List<(Func<ConfigApplyResult, bool> Predicate, TaskCompletionSource<ConfigApplyResult> Done)> _waiters = [];
    private (long? Version, string Hash) _current = (null, "");

    public IReadOnlyList<ConfigError>? RejectWith { get; set; }

    public int ApplyCount { get; private set; }

    public byte[]? LastJson { get; private set; }

    public (long? Version, string Hash) Current
    {
        get
        {
            lock (_gate)
            {
                return _current;
            }
        }
    }

    /// <summary>Pretend a config is already live (as if loaded from the cache at boot).</summary>
    public void Preload(long? version, string hash)
    {
        lock (_gate)
        {
            _current = (version, hash);
        }
    }

    public ConfigApplyResult Apply(ReadOnlyMemory<byte> configJson, string source, long? version)
    {
        ConfigApplyResult result;
        if (RejectWith is { } errors)
        {
            result = new ConfigApplyResult(false, "", version, errors);
        }
        else
        {
            var loaded = ConfigLoader.Load(configJson.Span);
            result = loaded.IsValid
                ? new ConfigApplyResult(true, loaded.Hash, version, [])
                : new ConfigApplyResult(false, "", version, loaded.Errors);
        }

        List<TaskCompletionSource<ConfigApplyResult>> completed = [];
        lock (_gate)
        {
            ApplyCount++;
            LastJson = configJson.ToArray();
            if (result.Applied)
            {
                _current = (version, result.Hash);
            }

            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].Predicate(result))
                {
                    completed.Add(_waiters[i].Done);
                    _waiters.RemoveAt(i);
                }
            }
        }

        foreach (var done in completed)
        {
            done.TrySetResult(result);
        }

        return result;
    }

    /// <summary>Completes on the next Apply call whose result satisfies the predicate.</summary>
    public Task<ConfigApplyResult> NextApplyAsync(Func<ConfigApplyResult, bool>? predicate = null)
    {
        var done = new TaskCompletionSource<ConfigApplyResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            _waiters.Add((predicate ?? (static _ => true), done));
        }

        return done.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    /// <summary>Completes once the live version is <paramref name="version"/> (now or later).</summary>
    public Task WaitForVersionAsync(long version)
    {
        var next = NextApplyAsync(r => r.Applied && r.Version == version);
        return Current.Version == version ? Task.CompletedTask : next;
    }
}
