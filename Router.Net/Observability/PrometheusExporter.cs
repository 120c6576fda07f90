using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Router.Net.Observability;

/// <summary>
/// Collects the router's instruments with a <see cref="MeterListener"/> and writes the Prometheus text format
/// (version 0.0.4). Ours rather than OpenTelemetry's exporter: a page of code, no reflection, NativeAOT-safe.
/// Instruments named <c>*_bucket</c>, <c>*_sum</c>, <c>*_count</c> form one histogram family.
/// </summary>
internal sealed class PrometheusExporter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Lock _gate = new();
    private readonly List<(Instrument Instrument, string Value, KeyValuePair<string, object?>[] Tags)> _collected = [];

    /// <summary>Exports the instruments of <paramref name="meter"/>, one router's: not every meter of the same name, since
    /// two routers embedded in one process each have their own.</summary>
    public PrometheusExporter(Meter meter)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, meter))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            _collected.Add((instrument, value.ToString(CultureInfo.InvariantCulture), tags.ToArray())));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) =>
            _collected.Add((instrument, FormatDouble(value), tags.ToArray())));
        _listener.Start();
    }

    /// <summary>Reads every instrument now and renders the exposition text.</summary>
    public string Scrape()
    {
        lock (_gate)
        {
            _collected.Clear();
            _listener.RecordObservableInstruments();
            var builder = new StringBuilder();
            string? family = null;
            foreach (var group in _collected.GroupBy(c => c.Instrument))
            {
                var instrument = group.Key;
                string name = instrument.Name;
                string familyName = HistogramFamily(name) ?? name;
                if (familyName != family)
                {
                    family = familyName;
                    string type = HistogramFamily(name) is not null ? "histogram"
                        : instrument.GetType().Name.StartsWith("ObservableCounter", StringComparison.Ordinal) ? "counter" : "gauge";
                    var help = instrument.Description ?? FindDescription(familyName) ?? familyName;
                    builder.Append("# HELP ").Append(familyName).Append(' ').Append(Escape(help, quotes: false)).Append('\n');
                    builder.Append("# TYPE ").Append(familyName).Append(' ').Append(type).Append('\n');
                }

                foreach (var (_, value, tags) in group)
                {
                    builder.Append(name);
                    if (tags.Length > 0)
                    {
                        builder.Append('{');
                        for (int i = 0; i < tags.Length; i++)
                        {
                            if (i > 0)
                            {
                                builder.Append(',');
                            }

                            builder.Append(tags[i].Key).Append("=\"").Append(Escape(Convert.ToString(tags[i].Value, CultureInfo.InvariantCulture) ?? "", quotes: true)).Append('"');
                        }

                        builder.Append('}');
                    }

                    builder.Append(' ').Append(value).Append('\n');
                }
            }

            return builder.ToString();
        }
    }

    private string? FindDescription(string family)
    {
        foreach (var item in _collected)
        {
            if (item.Instrument.Name == family + "_bucket")
            {
                return item.Instrument.Description;
            }
        }

        return null;
    }

    private static string? HistogramFamily(string name)
    {
        foreach (var suffix in (ReadOnlySpan<string>)["_bucket", "_sum", "_count"])
        {
            if (name.EndsWith(suffix, StringComparison.Ordinal) && name.Contains("_seconds", StringComparison.Ordinal))
            {
                return name[..^suffix.Length];
            }
        }

        return null;
    }

    private static string FormatDouble(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf" : value.ToString("R", CultureInfo.InvariantCulture);

    private static string Escape(string text, bool quotes)
    {
        var escaped = text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
        return quotes ? escaped.Replace("\"", "\\\"", StringComparison.Ordinal) : escaped;
    }

    public void Dispose() => _listener.Dispose();
}
