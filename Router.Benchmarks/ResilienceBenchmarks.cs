using BenchmarkDotNet.Attributes;
using Router.Core.Health;
using Router.Core.Resilience;

namespace Router.Benchmarks;

/// <summary>
/// What the inline resilience gates cost one request in the healthy case: the global and cluster concurrency limits,
/// the availability filter (health, outlier ejection, breaker), and the breaker permit and its success report.
/// Single-threaded, so this is the uncontended cost; the baseline reads the clock and nothing else.
/// </summary>
[MemoryDiagnoser]
public class ResilienceBenchmarks
{
    private readonly ConcurrencyLimit _global = new(10_000);
    private readonly ConcurrencyLimit _cluster = new(1024);
    private readonly ConcurrencyLimit _unlimited = new(null);
    private readonly HealthState _health = new();
    private readonly OutlierDetector _outlier = new();
    private readonly CircuitBreaker _breaker = new(consecutiveFailures: 5, breakMs: 10_000);
    private readonly CircuitBreaker _ratioBreaker = new(consecutiveFailures: 5, breakMs: 10_000, failureRatio: 0.5, minimumRequests: 20);

    [Benchmark(Baseline = true, Description = "no gates (clock read only)")]
    public long NoGates() => MonotonicClock.NowMs;

    [Benchmark(Description = "full gate sequence")]
    public long Gates() => Run(_global, _cluster, _breaker);

    [Benchmark(Description = "full gate sequence, ratio-window breaker")]
    public long GatesWithRatioBreaker() => Run(_global, _cluster, _ratioBreaker);

    [Benchmark(Description = "gate sequence, limits unlimited")]
    public long GatesUnlimited() => Run(_unlimited, _unlimited, _breaker);

    private long Run(ConcurrencyLimit global, ConcurrencyLimit cluster, CircuitBreaker breaker)
    {
        long now = MonotonicClock.NowMs;
        if (!global.TryEnter())
        {
            return -1;
        }

        if (!cluster.TryEnter())
        {
            global.Exit();
            return -1;
        }

        long result = -1;
        if (DestinationAvailability.IsAvailable(_health, _outlier, breaker, now) && breaker.TryAcquire(now, out var permit))
        {
            // The request would be forwarded here.
            breaker.OnSuccess(permit);
            _outlier.OnSuccess();
            result = now;
        }

        cluster.Exit();
        global.Exit();
        return result;
    }
}
