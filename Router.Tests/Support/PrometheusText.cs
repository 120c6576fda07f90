using System.Globalization;
using System.Text.RegularExpressions;

namespace Router.Tests.Support;

/// <summary>One sample of the Prometheus text format.</summary>
internal sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>
/// A strict reader of the Prometheus text exposition format (0.0.4): it throws on any line a Prometheus server
/// would reject, so tests prove the output parses, not just that it contains some substrings.
/// </summary>
internal static partial class PrometheusText
{
    public static IReadOnlyList<PrometheusSample> Parse(string text)
    {
        var samples = new List<PrometheusSample>();
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0)
            {
                continue;
            }

            if (line.StartsWith('#'))
            {
                var match = CommentLine().Match(line);
                if (!match.Success)
                {
                    throw new FormatException("bad comment line: " + line);
                }

                if (match.Groups[1].Value == "TYPE")
                {
                    var type = match.Groups[3].Value;
                    if (type is not ("counter" or "gauge" or "histogram" or "summary" or "untyped"))
                    {
                        throw new FormatException("bad type: " + line);
                    }

                    if (!types.TryAdd(match.Groups[2].Value, type))
                    {
                        throw new FormatException("TYPE given twice: " + line);
                    }
                }

                continue;
            }

            var sample = SampleLine().Match(line);
            if (!sample.Success)
            {
                throw new FormatException("bad sample line: " + line);
            }

            var name = sample.Groups[1].Value;
            var family = types.ContainsKey(name) ? name : HistogramBase(name);
            if (family is null || !types.ContainsKey(family))
            {
                throw new FormatException("sample before its TYPE: " + line);
            }

            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (Match label in LabelPair().Matches(sample.Groups[2].Value))
            {
                labels.Add(label.Groups[1].Value, label.Groups[2].Value.Replace("\\\"", "\"", StringComparison.Ordinal).Replace("\\n", "\n", StringComparison.Ordinal).Replace("\\\\", "\\", StringComparison.Ordinal));
            }

            var raw = sample.Groups[3].Value;
            double value = raw switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                "NaN" => double.NaN,
                _ => double.Parse(raw, NumberStyles.Float, CultureInfo.InvariantCulture),
            };
            samples.Add(new PrometheusSample(name, labels, value));
        }

        return samples;
    }

    public static double Value(this IReadOnlyList<PrometheusSample> samples, string name, params (string Key, string Value)[] labels) =>
        samples.Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Key, out var v) && v == l.Value)).Sum(s => s.Value);

    private static string? HistogramBase(string name)
    {
        foreach (var suffix in new[] { "_bucket", "_sum", "_count" })
        {
            if (name.EndsWith(suffix, StringComparison.Ordinal))
            {
                return name[..^suffix.Length];
            }
        }

        return null;
    }

    [GeneratedRegex(@"^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$")]
    private static partial Regex CommentLine();

    [GeneratedRegex(@"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*=""(?:[^""\\]|\\.)*"",?)*\})? ([-+0-9.eE]+|\+Inf|-Inf|NaN)$")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"([a-zA-Z_][a-zA-Z0-9_]*)=""((?:[^""\\]|\\.)*)""")]
    private static partial Regex LabelPair();
}
