using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Net.Hosting;
using Router.Net.Observability;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.Net.Observability;

public sealed class AccessLogTests
{
    [Test]
    public async Task AccessLog_WritesOneJsonLinePerRequest_WithTheRequestsFacts()
    {
        await using var upstream = await TestUpstream.StartAsync("A");
        var path = Path.Combine(Path.GetTempPath(), $"access-{Guid.NewGuid():N}.log");
        var options = new RouterHostOptions { AccessLogPath = path, HeartbeatPeriod = TimeSpan.FromMilliseconds(100) };
        options.Listen.Add(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        var host = new RouterHost(options, NullLoggerFactory.Instance);
        host.Applier.Apply(new RouterConfig { Routes = [Route("api", "a", "/api/", hosts: ["api.test"])], Clusters = [Cluster("a", upstream)] }, "test");
        host.Start();
        using (var client = await RawHttpClient.ConnectAsync(host.ListenEndPoints[0]))
        {
            for (int i = 0; i < 20; i++)
            {
                await client.SendAsync($"GET /api/item/{i}?q=1 HTTP/1.1\r\nHost: api.test\r\n\r\n");
                await client.ReadResponseAsync();
            }

            await client.SendAsync("GET /nope HTTP/1.1\r\nHost: other.test\r\n\r\n");
            await client.ReadResponseAsync();
        }

        await host.StopAsync(TimeSpan.FromSeconds(1));
        var lines = await File.ReadAllLinesAsync(path);
        File.Delete(path);
        Assert.That(lines, Has.Length.EqualTo(21));
        using var first = JsonDocument.Parse(lines[0]);
        var entry = first.RootElement;
        Assert.Multiple(() =>
        {
            Assert.That(entry.GetProperty("method").GetString(), Is.EqualTo("GET"));
            Assert.That(entry.GetProperty("host").GetString(), Is.EqualTo("api.test"));
            Assert.That(entry.GetProperty("path").GetString(), Is.EqualTo("/api/item/0?q=1"));
            Assert.That(entry.GetProperty("route").GetString(), Is.EqualTo("api"));
            Assert.That(entry.GetProperty("cluster").GetString(), Is.EqualTo("a"));
            Assert.That(entry.GetProperty("destination").GetString(), Is.EqualTo(upstream.Address));
            Assert.That(entry.GetProperty("status").GetInt32(), Is.EqualTo(200));
            Assert.That(entry.GetProperty("bytes").GetInt64(), Is.EqualTo("A GET /api/item/0?q=1".Length));
            Assert.That(entry.GetProperty("client").GetString(), Is.EqualTo("127.0.0.1"));
            Assert.That(entry.GetProperty("outcome").GetString(), Is.EqualTo("success"));
            Assert.That(entry.GetProperty("duration_ms").GetDouble(), Is.GreaterThan(0));
        });
        using var last = JsonDocument.Parse(lines[^1]);
        Assert.That(last.RootElement.GetProperty("status").GetInt32(), Is.EqualTo(404));
        Assert.That(last.RootElement.GetProperty("outcome").GetString(), Is.EqualTo("local"));
    }

    [Test]
    public async Task AccessLog_WhenTheDiskIsStuck_DropsEntriesInsteadOfBlocking()
    {
        using var stuck = new StuckStream();
        var log = new AccessLog(stuck, NullLogger.Instance, capacity: 16);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < 1000; i++)
        {
            log.Record("127.0.0.1"u8.ToArray(), "GET"u8, "h"u8, "/"u8, "r", "c", "d", 200, 1, 1, 1, "success");
        }

        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)), "recording never waits for the writer");
        Assert.That(log.Dropped, Is.GreaterThan(900));
        stuck.Release();
        await log.DisposeAsync();
    }

    /// <summary>A stream whose writes block until released, like a stalled disk.</summary>
    private sealed class StuckStream : MemoryStream
    {
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Release() => _release.TrySetResult();

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await _release.Task;
            await base.WriteAsync(buffer, cancellationToken);
        }
    }
}
