using System.Diagnostics;
using System.Diagnostics.Metrics;
using Router.Net.Hosting;

namespace Router.Net.Observability;

/// <summary>
/// The process and runtime series every Prometheus client library exports under these names (<c>process_*</c>, and
/// <c>dotnet_gc_*</c> for the .NET runtime), so existing dashboards and alerts work unchanged. They are process-wide:
/// two routers embedded in one process report the same values. Read only when scraped.
/// </summary>
internal static class ProcessMetrics
{
    private static readonly double StartTimeSeconds = StartTime();

    public static void Register(Meter meter)
    {
        meter.CreateObservableCounter("process_cpu_seconds_total", () => Environment.CpuUsage.TotalTime.TotalSeconds, description: "User and system CPU time spent by the process, in seconds.");
        meter.CreateObservableGauge("process_resident_memory_bytes", () => Environment.WorkingSet, description: "Resident memory size in bytes.");
        meter.CreateObservableGauge("process_start_time_seconds", () => StartTimeSeconds, description: "Start time of the process since the Unix epoch, in seconds.");
        if (OperatingSystem.IsLinux())
        {
            meter.CreateObservableGauge("process_open_fds", OpenDescriptors, description: "Open file descriptors (sockets included).");
            meter.CreateObservableGauge("process_max_fds", () => DescriptorLimit.Current() ?? -1, description: "The soft limit on open file descriptors.");
        }

        meter.CreateObservableCounter("dotnet_gc_allocated_bytes_total", () => GC.GetTotalAllocatedBytes(precise: false), description: "Bytes allocated on the managed heap since the process started (steady-state proxying adds nothing).");
        meter.CreateObservableCounter("dotnet_gc_collections_total", ObserveCollections, description: "Garbage collections by generation.");
        meter.CreateObservableCounter("dotnet_gc_pause_seconds_total", () => GC.GetTotalPauseDuration().TotalSeconds, description: "Time the process spent paused for garbage collections, in seconds.");
        meter.CreateObservableGauge("dotnet_gc_heap_size_bytes", () => GC.GetGCMemoryInfo().HeapSizeBytes, description: "Managed heap size at the last garbage collection, in bytes.");
    }

    private static IEnumerable<Measurement<long>> ObserveCollections()
    {
        for (int generation = 0; generation <= GC.MaxGeneration; generation++)
        {
            yield return new Measurement<long>(GC.CollectionCount(generation), new KeyValuePair<string, object?>("generation", generation.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }
    }

    private static long OpenDescriptors()
    {
        try
        {
            long count = 0;
            foreach (var _ in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
            {
                count++;
            }

            // The enumeration's own descriptor on the directory is counted too.
            return count - 1;
        }
        catch (IOException)
        {
            return -1;
        }
        catch (UnauthorizedAccessException)
        {
            return -1;
        }
    }

    private static double StartTime()
    {
        using var process = Process.GetCurrentProcess();
        return (process.StartTime.ToUniversalTime() - DateTime.UnixEpoch).TotalSeconds;
    }
}
