using System.Globalization;
using System.Text;
using System.Text.Json;
using Router.Core.Configuration;
using Router.Core.Routing;
using Router.Net.Forwarding;
using Router.Net.Hosting;

namespace Router.Net.Admin;

/// <summary>The admin endpoints' logic, separate from the transport so it reads as a table of routes.</summary>
internal sealed class AdminEndpoints
{
    private readonly RouterHost _host;

    public AdminEndpoints(RouterHost host)
    {
        _host = host;
    }

    private AdminResponse Ready()
    {
        if (_host.Table.Current is null)
        {
            return new AdminResponse(503, "text/plain", "no config is live\n");
        }

        if (_host.Runtime.ShuttingDown)
        {
            return new AdminResponse(503, "text/plain", "draining\n");
        }

        return _host.Listening
            ? new AdminResponse(200, "text/plain", "ready\n")
            : new AdminResponse(503, "text/plain", "starting: proxy listeners not accepting yet\n");
    }

    public AdminResponse Handle(string method, string path)
    {
        return (method, path) switch
        {
            ("GET", "/healthz") => new AdminResponse(200, "text/plain", "ok\n"),
            ("GET", "/ready") => Ready(),
            ("GET", "/admin/config") => Json(200, WriteConfig),
            ("POST", "/admin/reload") => Reload(),
            ("GET", "/admin/clusters") => Json(200, WriteClusters),
            ("GET", "/metrics") => new AdminResponse(200, "text/plain; version=0.0.4", Metrics()),
            (_, "/admin/reload") => new AdminResponse(405, "text/plain", "method not allowed\n") { Allow = "POST" },
            (_, "/healthz" or "/ready" or "/admin/config" or "/admin/clusters" or "/metrics") =>
                new AdminResponse(405, "text/plain", "method not allowed\n") { Allow = "GET" },
            _ => new AdminResponse(404, "text/plain", "not found\n"),
        };
    }

    private AdminResponse Reload()
    {
        var reload = _host.Reload;
        if (reload is null)
        {
            return new AdminResponse(409, "application/json", "{\"error\":\"this router has no config file to reload\"}");
        }

        var outcome = reload();
        return Json(outcome.Applied ? 200 : 400, writer =>
        {
            writer.WriteBoolean("applied", outcome.Applied);
            if (outcome.Info is not null && outcome.Applied)
            {
                writer.WriteNumber("generation", outcome.Info.Generation);
                writer.WriteString("hash", outcome.Info.Hash);
            }

            WriteErrors(writer, outcome.Errors);
        });
    }

    private void WriteConfig(Utf8JsonWriter writer)
    {
        var snapshot = _host.Table.Current;
        if (snapshot is not null)
        {
            WriteInfo(writer, snapshot.Info);
        }
        else
        {
            writer.WriteNull("hash");
        }

        var failure = _host.Applier.LastFailure;
        if (failure is not null)
        {
            writer.WriteStartObject("lastError");
            writer.WriteString("at", failure.At);
            writer.WriteString("source", failure.Source);
            WriteErrors(writer, failure.Errors);
            writer.WriteEndObject();
        }
        else
        {
            writer.WriteNull("lastError");
        }

        if (_host.ControlPlaneStatus is { } controlPlane)
        {
            writer.WriteStartObject("controlPlane");
            controlPlane.WriteStatus(writer);
            writer.WriteEndObject();
        }

        if (snapshot is not null)
        {
            writer.WritePropertyName("config");
            writer.WriteRawValue(ConfigLoader.Serialize(snapshot.Config));
        }
    }

    private static void WriteInfo(Utf8JsonWriter writer, SnapshotInfo info)
    {
        if (info.Version is { } version)
        {
            writer.WriteNumber("version", version);
        }
        else
        {
            writer.WriteNumber("version", info.Generation);
        }

        writer.WriteNumber("generation", info.Generation);
        writer.WriteString("hash", info.Hash);
        writer.WriteString("source", info.Source);
        writer.WriteString("appliedAt", info.AppliedAt);
    }

    private void WriteClusters(Utf8JsonWriter writer)
    {
        var snapshot = _host.Table.Current;
        writer.WriteStartArray("clusters");
        if (snapshot is not null)
        {
            foreach (var cluster in snapshot.Clusters)
            {
                writer.WriteStartObject();
                writer.WriteString("id", cluster.Id);
                writer.WriteNumber("inFlight", Volatile.Read(ref cluster.InFlight));
                writer.WriteStartArray("destinations");
                foreach (var destination in cluster.Destinations)
                {
                    writer.WriteStartObject();
                    writer.WriteString("address", destination.Address);
                    writer.WriteNumber("inFlight", Volatile.Read(ref destination.InFlight));
                    long now = Router.Core.Resilience.MonotonicClock.NowMs;
                    writer.WriteBoolean("available", destination.IsAvailable);
                    writer.WriteString("health", destination.Health is null ? "unchecked" : destination.Health.IsHealthy ? "healthy" : "unhealthy");
                    writer.WriteString("breaker", destination.Breaker?.State.ToString().ToLowerInvariant() ?? "none");
                    writer.WriteBoolean("ejected", destination.Outlier?.IsEjected(now) ?? false);
                    writer.WriteBoolean("disabled", destination.Disabled);
                    var pool = Volatile.Read(ref destination.Pool) as UpstreamPool;
                    writer.WriteNumber("pooledConnections", pool?.IdleConnections ?? 0);
                    writer.WriteNumber("openConnections", pool?.OpenConnections ?? 0);
                    writer.WriteNumber("connectionsOpened", pool?.ConnectionsOpened ?? 0);
                    writer.WriteEndObject();
                }

                writer.WriteEndArray();
                writer.WriteEndObject();
            }
        }

        writer.WriteEndArray();
    }

    private string Metrics() => _host.Exporter.Scrape();

    private static void WriteErrors(Utf8JsonWriter writer, IReadOnlyList<ConfigError> errors)
    {
        writer.WriteStartArray("errors");
        foreach (var error in errors)
        {
            writer.WriteStartObject();
            writer.WriteString("path", error.Path);
            writer.WriteString("message", error.Message);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    private static AdminResponse Json(int status, Action<Utf8JsonWriter> write)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }

        return new AdminResponse(status, "application/json", Encoding.UTF8.GetString(buffer.WrittenSpan) + "\n");
    }
}
