using System.Diagnostics;

namespace Router.Net.Observability;

/// <summary>
/// Request counters of one (route, cluster) pair: by status class and a latency histogram. Plain Interlocked
/// increments on preallocated arrays; the metrics instruments read them at scrape time.
/// </summary>
internal sealed class RequestCounters
{
    /// <summary>Histogram bucket upper bounds in seconds (Prometheus client defaults, trimmed at the low end for a proxy).</summary>
    public static readonly double[] BucketBounds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private static readonly long[] s_bucketTicks = ToTicks(BucketBounds);

    public RequestCounters(string route, string cluster)
    {
        Route = route;
        Cluster = cluster;
    }

    public string Route { get; }

    public string Cluster { get; }

    /// <summary>Index 1..5 = 1xx..5xx; 0 unused.</summary>
    public readonly long[] ByClass = new long[6];

    /// <summary>Cumulative counts are built at scrape time; each slot counts requests in (bound[i-1], bound[i]]; the last is +Inf.</summary>
    public readonly long[] Buckets = new long[BucketBounds.Length + 1];

    public long DurationTicksSum;

    public long Count;

    public void Record(int status, long elapsedTicks)
    {
        int statusClass = status / 100;
        if ((uint)statusClass < 6)
        {
            Interlocked.Increment(ref ByClass[statusClass]);
        }

        int bucket = 0;
        var bounds = s_bucketTicks;
        while (bucket < bounds.Length && elapsedTicks > bounds[bucket])
        {
            bucket++;
        }

        Interlocked.Increment(ref Buckets[bucket]);
        Interlocked.Add(ref DurationTicksSum, elapsedTicks);
        Interlocked.Increment(ref Count);
    }

    private static long[] ToTicks(double[] seconds)
    {
        var ticks = new long[seconds.Length];
        for (int i = 0; i < seconds.Length; i++)
        {
            ticks[i] = (long)(seconds[i] * Stopwatch.Frequency);
        }

        return ticks;
    }
}
