using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Net.Http1;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>Slowloris: many clients trickling a head one byte a second must neither slow others down nor stay open.</summary>
public sealed class SlowClientTests
{
    private const int SlowClients = 1000;
    // p99 of 1,000 requests (~0.1 s here) is the 10th worst: one scheduler hiccup on the shared machine can't decide it
    // alone, as it does for the 2nd worst of 200.
    private const int Samples = 1000;

    [Test]
    public async Task ThousandSlowHeadClients_DoNotSlowANormalClient_AndAreClosedWith408ByTheHeaderTimeout()
    {
        await using var upstream = new RecordingUpstream();
        var config = new RouterConfig
        {
            Routes = [Route("r", "c")],
            Clusters = [new ClusterConfig { Id = "c", Destinations = [new DestinationConfig { Address = upstream.Address }] }],
        };
        var headerTimeout = TimeSpan.FromSeconds(3);
        await using var router = RouterFixture.Start(config, new HttpLimits { HeaderTimeout = headerTimeout });
        using var normal = await RawHttpClient.ConnectAsync(router.EndPoint);

        // Warm up (JIT, pools), then the unloaded baseline.
        await MeasureAsync(normal, 50);
        var unloaded = await MeasureAsync(normal, Samples);

        var slow = new List<Socket>(SlowClients);
        try
        {
            for (int i = 0; i < SlowClients; i++)
            {
                var socket = new Socket(router.EndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(router.EndPoint);
                slow.Add(socket);
            }

            var head = Encoding.ASCII.GetBytes("GET /slow HTTP/1.1\r\nHost: a\r\nX-Slow: " + new string('s', 64) + "\r\n\r\n");
            using var stop = new CancellationTokenSource();
            var trickle = Task.Run(() => TrickleAsync(slow, head, stop.Token));
            var started = Stopwatch.StartNew();

            // Measure while every slow client has started its head (after the first second) and none has timed out yet.
            // Up to three samples, the best one kept: the machine is shared, and another process's burst lands in one
            // sample of ~0.1 s, while a slowdown caused by the slow clients would show in all three.
            await Task.Delay(1100);
            int gen0 = GC.CollectionCount(0);
            var loaded = (P50: double.MaxValue, P99: double.MaxValue);
            var samples = new List<string>();
            for (int attempt = 0; attempt < 3 && loaded.P99 > 2 * Math.Max(unloaded.P99, 1.0); attempt++)
            {
                var sample = await MeasureAsync(normal, Samples);
                samples.Add(sample.P99.ToString("F3", System.Globalization.CultureInfo.InvariantCulture));
                if (sample.P99 < loaded.P99)
                {
                    loaded = sample;
                }
            }

            var measuredWithin = started.Elapsed;
            TestContext.Out.WriteLine($"loaded p99 samples: {string.Join(", ", samples)} ms; gen0 GCs meanwhile: {GC.CollectionCount(0) - gen0}");

            var closedWith408 = await Task.WhenAll(slow.Select(ExpectTimeoutResponseAsync));
            await stop.CancelAsync();
            await trickle;
            var allClosed = started.Elapsed;

            TestContext.Out.WriteLine($"normal client p50/p99 unloaded: {unloaded.P50:F3}/{unloaded.P99:F3} ms; with {SlowClients} slow clients: {loaded.P50:F3}/{loaded.P99:F3} ms (measured by {measuredWithin.TotalSeconds:F1} s)");
            TestContext.Out.WriteLine($"slow clients answered 408 and closed: {closedWith408.Count(x => x)}/{SlowClients}, all by {allClosed.TotalSeconds:F1} s");

            Assert.That(measuredWithin, Is.LessThan(headerTimeout), "the loaded sample was taken while the slow clients were all open");
            Assert.That(closedWith408.Count(x => x), Is.EqualTo(SlowClients), "every slow client got 408 and was closed");
            Assert.That(allClosed, Is.LessThan(headerTimeout + TimeSpan.FromSeconds(5)));

            // Twice the unloaded p99, with a 1 ms floor on the baseline: a loopback p99 of a few hundred µs on a shared
            // 2-core machine moves by more than 2x from scheduler noise alone.
            Assert.That(loaded.P99, Is.LessThanOrEqualTo(2 * Math.Max(unloaded.P99, 1.0)), "the normal client's p99 under slowloris");
        }
        finally
        {
            foreach (var socket in slow)
            {
                socket.Dispose();
            }
        }
    }

    private static async Task<(double P50, double P99)> MeasureAsync(RawHttpClient client, int count)
    {
        var times = new double[count];
        var request = Encoding.ASCII.GetBytes("GET /normal HTTP/1.1\r\nHost: a\r\n\r\n");
        for (int i = 0; i < count; i++)
        {
            long start = Stopwatch.GetTimestamp();
            await client.SendAsync(request);
            var response = await client.ReadResponseAsync();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            Assert.That(response.StatusCode, Is.EqualTo(200));
        }

        Array.Sort(times);
        return (times[count / 2], times[(int)Math.Ceiling(count * 0.99) - 1]);
    }

    /// <summary>
    /// One byte per second to every slow client until stopped or the head is sent. The clients are spread over the
    /// second (a slice of 10 every 10 ms), as independent attackers would be; all 1,000 sent in one burst would measure this
    /// process's own burst of 1,000 sends on the same two cores rather than the router.
    /// </summary>
    private static async Task TrickleAsync(List<Socket> sockets, byte[] head, CancellationToken stop)
    {
        const int Slices = 100;
        int perSlice = (sockets.Count + Slices - 1) / Slices;
        for (int i = 0; i < head.Length && !stop.IsCancellationRequested; i++)
        {
            for (int slice = 0; slice < Slices; slice++)
            {
                foreach (var socket in sockets.Skip(slice * perSlice).Take(perSlice))
                {
                    try
                    {
                        socket.Send(head, i, 1, SocketFlags.None);
                    }
                    catch (SocketException)
                    {
                        // Already answered and closed by the router.
                    }
                    catch (ObjectDisposedException)
                    {
                    }
                }

                try
                {
                    await Task.Delay(1000 / Slices, stop);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private static async Task<bool> ExpectTimeoutResponseAsync(Socket socket)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var received = new List<byte>();
        var buffer = new byte[512];
        try
        {
            while (true)
            {
                int n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
                if (n == 0)
                {
                    break;
                }

                received.AddRange(buffer.AsSpan(0, n));
            }
        }
        catch (SocketException)
        {
            // A reset after the response is still a close; what was read before counts.
        }
        catch (OperationCanceledException)
        {
            return false;
        }

        return Encoding.ASCII.GetString(received.ToArray()).StartsWith("HTTP/1.1 408 ", StringComparison.Ordinal);
    }
}
