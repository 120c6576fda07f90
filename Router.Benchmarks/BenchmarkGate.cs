using System.Globalization;
using System.Reflection;
using System.Text.Json;
using BenchmarkDotNet.Attributes;

namespace Router.Benchmarks;

/// <summary>
/// The benchmark regression gate (<c>make bench-check</c>): compares a BenchmarkDotNet run's JSON reports with the
/// committed baseline and exits 1 with a table of offenders; <c>--write-baseline</c> turns a run into the baseline.
/// </summary>
/// <remarks>
/// A benchmark regresses when it allocates more bytes per operation than the baseline (exact: allocation does not
/// depend on machine load), or when it is slower by more than the threshold. "Slower" defaults to mode <c>both</c>:
/// the absolute mean is over the threshold AND, for a method that is not its class's baseline, its ratio to the
/// class baseline (BenchmarkDotNet's Ratio, per parameter set) is over the threshold too. The machine is shared, so a
/// loaded or slower machine lifts every absolute mean; the ratio cancels most of that, while the absolute check keeps a
/// baseline method that got faster from flagging its neighbours. A baseline method itself can only be judged on its
/// absolute mean. <c>--mode absolute</c> or <c>--mode ratio</c> use one test alone.
/// Several <c>--results</c> directories (a confirming re-run of the offenders) are merged by taking each benchmark's
/// fastest mean: load on a shared machine only ever adds time, so a regression must show in every run to fail.
/// <c>--offenders FILE</c> writes BenchmarkDotNet filters for the offenders and their class baselines, for that re-run.
/// Allocation is compared with a 0.01% tolerance (a 16 MB/op benchmark varies by a byte); zero stays zero.
/// </remarks>
internal static class BenchmarkGate
{
    private const string Usage =
        "benchcheck --results DIR [--results DIR...] --baseline FILE [--write-baseline] [--offenders FILE] [--threshold 0.10] [--mode both|absolute|ratio]";

    public static int Run(string[] args)
    {
        var results = new List<string>();
        string? baseline = null, offendersFile = null, mode = "both";
        bool write = false;
        double threshold = 0.10;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--results" when i + 1 < args.Length: results.Add(args[++i]); break;
                case "--offenders" when i + 1 < args.Length: offendersFile = args[++i]; break;
                case "--baseline" when i + 1 < args.Length: baseline = args[++i]; break;
                case "--threshold" when i + 1 < args.Length: threshold = double.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--mode" when i + 1 < args.Length: mode = args[++i]; break;
                case "--write-baseline": write = true; break;
                default: Console.Error.WriteLine(Usage); return 2;
            }
        }

        if (results.Count == 0 || baseline is null || mode is not ("both" or "absolute" or "ratio"))
        {
            Console.Error.WriteLine(Usage);
            return 2;
        }

        List<Measurement> current = ReadReports(results);
        if (current.Count == 0)
        {
            Console.Error.WriteLine($"No BenchmarkDotNet JSON reports with results under {string.Join(", ", results)}.");
            return 2;
        }

        if (write)
        {
            WriteBaseline(baseline, current);
            Console.WriteLine($"Baseline of {current.Count} benchmarks written to {baseline}.");
            return 0;
        }

        return Compare(ReadBaseline(baseline), current, threshold, mode, offendersFile);
    }

    private static int Compare(List<Measurement> baseline, List<Measurement> current, double threshold, string mode, string? offendersFile)
    {
        var filters = new SortedSet<string>(StringComparer.Ordinal);
        var byId = current.ToDictionary(m => m.Id);
        var rows = new List<string[]>();
        var offenders = new List<string[]>();
        var drift = new List<double>();
        foreach (Measurement b in baseline)
        {
            if (!byId.Remove(b.Id, out Measurement? c))
            {
                offenders.Add([b.Id, Ns(b.MeanNs), "-", "-", "-", "-", "-", Bytes(b.AllocatedBytes), "-", "missing from this run"]);
                continue;
            }

            double meanChange = c.MeanNs / b.MeanNs - 1;
            double ratioChange = c.Ratio / b.Ratio - 1;
            drift.Add(c.MeanNs / b.MeanNs);
            bool slowerAbsolute = meanChange > threshold;
            bool slowerRatio = !b.IsBaseline && ratioChange > threshold;
            bool slower = mode switch
            {
                "absolute" => slowerAbsolute,
                "ratio" => b.IsBaseline ? slowerAbsolute : slowerRatio,
                _ => slowerAbsolute && (b.IsBaseline || slowerRatio),
            };
            bool allocates = c.AllocatedBytes > b.AllocatedBytes + b.AllocatedBytes / 10_000;
            string verdict = (slower, allocates) switch
            {
                (true, true) => "SLOWER, ALLOCATES MORE",
                (true, false) => "SLOWER",
                (false, true) => "ALLOCATES MORE",
                _ => "ok",
            };
            string[] row =
            [
                b.Id, Ns(b.MeanNs), Ns(c.MeanNs), Percent(meanChange),
                b.IsBaseline ? "1.00 (base)" : b.Ratio.ToString("0.00", CultureInfo.InvariantCulture),
                c.Ratio.ToString("0.00", CultureInfo.InvariantCulture), b.IsBaseline ? "-" : Percent(ratioChange),
                Bytes(b.AllocatedBytes), Bytes(c.AllocatedBytes), verdict,
            ];
            rows.Add(row);
            if (slower || allocates)
            {
                offenders.Add(row);
                filters.Add($"*.{b.Type}.{b.Method}");
                if (baseline.Find(x => x.Type == b.Type && x.IsBaseline) is { } classBaseline)
                {
                    filters.Add($"*.{b.Type}.{classBaseline.Method}");
                }
            }
        }

        string[] header = ["Benchmark", "Base mean", "Mean", "Δ mean", "Base ratio", "Ratio", "Δ ratio", "Base alloc", "Alloc", "Verdict"];
        PrintTable(header, rows);
        drift.Sort();
        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Mode {mode}, threshold {threshold:P0}. Median mean/baseline over all benchmarks: {(drift.Count > 0 ? drift[drift.Count / 2] : 1):0.00} (machine drift: ~1.00 means this run is comparable in absolute terms)."));
        foreach (Measurement extra in byId.Values)
        {
            Console.WriteLine($"New (not in baseline, not gated): {extra.Id}; run make bench-baseline to include it.");
        }

        if (offendersFile is not null)
        {
            File.WriteAllLines(offendersFile, filters);
        }

        if (offenders.Count == 0)
        {
            Console.WriteLine($"bench-check: PASS ({rows.Count} benchmarks).");
            return 0;
        }

        Console.WriteLine();
        Console.WriteLine($"bench-check: FAIL, {offenders.Count} offender(s):");
        PrintTable(header, offenders);
        return 1;
    }

    /// <summary>Reads every BenchmarkDotNet JSON report under <paramref name="dir"/> and computes ratios per class and parameter set.</summary>
    private static List<Measurement> ReadReports(List<string> dirs)
    {
        var baselineMethods = BaselineMethods();
        var list = new List<Measurement>();
        foreach (string file in dirs.Where(Directory.Exists).SelectMany(d => Directory.EnumerateFiles(d, "*.json", SearchOption.AllDirectories)))
        {
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(file));
            if (!doc.RootElement.TryGetProperty("Benchmarks", out JsonElement benchmarks))
            {
                continue;
            }

            foreach (JsonElement b in benchmarks.EnumerateArray())
            {
                // A benchmark that failed to run has no statistics; leaving it out makes the gate report it missing.
                if (!b.TryGetProperty("Statistics", out JsonElement stats) || stats.ValueKind != JsonValueKind.Object)
                {
                    continue;
                }

                string type = b.GetProperty("Type").GetString()!;
                string method = b.GetProperty("Method").GetString()!;
                string parameters = b.TryGetProperty("Parameters", out JsonElement p) ? p.GetString() ?? "" : "";
                long allocated = b.TryGetProperty("Memory", out JsonElement memory) && memory.ValueKind == JsonValueKind.Object
                    ? memory.GetProperty("BytesAllocatedPerOperation").GetInt64()
                    : 0;
                bool isBaseline = baselineMethods.TryGetValue(type, out string? baseMethod) && baseMethod == method;
                var m = new Measurement(type, method, parameters, stats.GetProperty("Mean").GetDouble(), allocated, isBaseline, 1);
                int seen = list.FindIndex(x => x.Id == m.Id);
                if (seen < 0)
                {
                    list.Add(m);
                }
                else
                {
                    list[seen] = m with { MeanNs = Math.Min(m.MeanNs, list[seen].MeanNs), AllocatedBytes = Math.Max(m.AllocatedBytes, list[seen].AllocatedBytes) };
                }
            }
        }

        // Ratio = mean / mean of the class's baseline method with the same parameters, as BenchmarkDotNet's Ratio column.
        var result = new List<Measurement>(list.Count);
        foreach (Measurement m in list)
        {
            Measurement? b = list.Find(x => x.Type == m.Type && x.Parameters == m.Parameters && x.IsBaseline);
            result.Add(m with { Ratio = b is null ? 1 : m.MeanNs / b.MeanNs });
        }

        return result;
    }

    private static Dictionary<string, string> BaselineMethods()
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (Type type in typeof(BenchmarkGate).Assembly.GetTypes())
        {
            foreach (MethodInfo method in type.GetMethods(BindingFlags.Public | BindingFlags.Instance))
            {
                if (method.GetCustomAttribute<BenchmarkAttribute>() is { Baseline: true })
                {
                    map[type.Name] = method.Name;
                }
            }
        }

        return map;
    }

    private static void WriteBaseline(string path, List<Measurement> measurements)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var stream = File.Create(path);
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("note", "Summary of a `make bench-baseline` run (BenchmarkDotNet --job short). Mean in ns; allocated in bytes/op.");
        json.WriteString("created", DateTimeOffset.UtcNow.ToString("u", CultureInfo.InvariantCulture));
        json.WriteString("machine", $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}");
        json.WriteStartArray("benchmarks");
        foreach (Measurement m in measurements.OrderBy(m => m.Id, StringComparer.Ordinal))
        {
            json.WriteStartObject();
            json.WriteString("id", m.Id);
            json.WriteString("type", m.Type);
            json.WriteString("method", m.Method);
            json.WriteString("parameters", m.Parameters);
            json.WriteBoolean("baseline", m.IsBaseline);
            json.WriteNumber("meanNs", Math.Round(m.MeanNs, 3));
            json.WriteNumber("ratio", Math.Round(m.Ratio, 4));
            json.WriteNumber("allocatedBytes", m.AllocatedBytes);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
        stream.Write("\n"u8);
    }

    private static List<Measurement> ReadBaseline(string path)
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var list = new List<Measurement>();
        foreach (JsonElement b in doc.RootElement.GetProperty("benchmarks").EnumerateArray())
        {
            list.Add(new Measurement(
                b.GetProperty("type").GetString()!,
                b.GetProperty("method").GetString()!,
                b.GetProperty("parameters").GetString()!,
                b.GetProperty("meanNs").GetDouble(),
                b.GetProperty("allocatedBytes").GetInt64(),
                b.GetProperty("baseline").GetBoolean(),
                b.GetProperty("ratio").GetDouble()));
        }

        return list;
    }

    private static void PrintTable(string[] header, List<string[]> rows)
    {
        var widths = new int[header.Length];
        foreach (string[] row in rows.Prepend(header))
        {
            for (int i = 0; i < row.Length; i++)
            {
                widths[i] = Math.Max(widths[i], row[i].Length);
            }
        }

        foreach (string[] row in rows.Prepend(header))
        {
            Console.WriteLine("| " + string.Join(" | ", row.Select((cell, i) => i == 0 ? cell.PadRight(widths[i]) : cell.PadLeft(widths[i]))) + " |");
        }
    }

    private static string Ns(double ns) => ns switch
    {
        >= 1_000_000 => (ns / 1_000_000).ToString("0.00", CultureInfo.InvariantCulture) + " ms",
        >= 1_000 => (ns / 1_000).ToString("0.00", CultureInfo.InvariantCulture) + " µs",
        _ => ns.ToString("0.00", CultureInfo.InvariantCulture) + " ns",
    };

    private static string Percent(double change) => change.ToString("+0.0%;-0.0%;0.0%", CultureInfo.InvariantCulture);

    private static string Bytes(long bytes) => bytes.ToString(CultureInfo.InvariantCulture) + " B";

    private sealed record Measurement(string Type, string Method, string Parameters, double MeanNs, long AllocatedBytes, bool IsBaseline, double Ratio)
    {
        public string Id => Parameters.Length == 0 ? $"{Type}.{Method}" : $"{Type}.{Method}({Parameters})";
    }
}
