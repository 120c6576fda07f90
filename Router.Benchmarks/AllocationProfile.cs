using System.Diagnostics.Tracing;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Router.Core.Configuration;
using Router.Net.Hosting;

namespace Router.Benchmarks;

/// <summary>
/// `allocprofile --upstream IP:PORT [--listen IP:PORT] [--seconds N]`: runs the router in-process and samples its
/// allocations by type (the runtime's GCAllocationTick events, one per ~100 KB allocated) while you drive load
/// from outside (e.g. wrk). Prints allocated bytes per type, most first. A tool to find per-request allocations.
/// </summary>
internal static class AllocationProfile
{
    public static async Task<int> RunAsync(string[] args)
    {
        string upstream = Arg(args, "--upstream") ?? "127.0.0.1:19000";
        string listen = Arg(args, "--listen") ?? "127.0.0.1:18090";
        int seconds = int.Parse(Arg(args, "--seconds") ?? "15", System.Globalization.CultureInfo.InvariantCulture);

        var options = new RouterHostOptions();
        options.Listen.Add(IPEndPoint.Parse(listen));
        await using var host = new RouterHost(options, NullLoggerFactory.Instance);
        var outcome = host.Applier.Apply(new RouterConfig
        {
            Routes = [new RouteConfig { Id = "r", Cluster = "c" }],
            Clusters = [new ClusterConfig { Id = "c", Destinations = [new DestinationConfig { Address = upstream }] }],
        }, "allocprofile");
        if (!outcome.Applied)
        {
            Console.Error.WriteLine(string.Join("; ", outcome.Errors));
            return 1;
        }

        host.Start();
        using var listener = new AllocationListener();
        long before = GC.GetTotalAllocatedBytes();
        Console.WriteLine($"router on {listen} -> {upstream}; sampling allocations for {seconds} s: drive load now");
        await Task.Delay(TimeSpan.FromSeconds(seconds));
        long total = GC.GetTotalAllocatedBytes() - before;
        Console.WriteLine($"total allocated {total:N0} bytes");
        foreach (var (type, bytes) in listener.Snapshot().OrderByDescending(p => p.Value).Take(30).Select(p => (p.Key, p.Value)))
        {
            Console.WriteLine($"{bytes,14:N0}  {type}");
        }

        return 0;
    }

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private sealed class AllocationListener : EventListener
    {
        private readonly Dictionary<string, long> _bytes = new(StringComparer.Ordinal);

        public Dictionary<string, long> Snapshot()
        {
            lock (_bytes)
            {
                return new Dictionary<string, long>(_bytes);
            }
        }

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
            {
                EnableEvents(eventSource, EventLevel.Verbose, (EventKeywords)0x1);
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs eventData)
        {
            if (eventData.EventName is null || !eventData.EventName.StartsWith("GCAllocationTick", StringComparison.Ordinal) || eventData.Payload is null)
            {
                return;
            }

            int typeIndex = eventData.PayloadNames!.IndexOf("TypeName");
            int amountIndex = eventData.PayloadNames.IndexOf("AllocationAmount64");
            if (amountIndex < 0)
            {
                amountIndex = eventData.PayloadNames.IndexOf("AllocationAmount");
            }

            string type = typeIndex >= 0 ? eventData.Payload[typeIndex]?.ToString() ?? "?" : "?";
            long amount = amountIndex >= 0 ? Convert.ToInt64(eventData.Payload[amountIndex], System.Globalization.CultureInfo.InvariantCulture) : 0;
            lock (_bytes)
            {
                _bytes[type] = _bytes.GetValueOrDefault(type) + amount;
            }
        }
    }
}
