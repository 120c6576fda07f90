using System.Text.Json;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>Upstream keep-alive connections under bursts of concurrent requests.</summary>
public sealed class UpstreamPoolTests
{
    [Test]
    public async Task BurstAboveTheOldIdleCap_KeepsEveryUpstreamConnection_AndTheNextBurstOpensNone()
    {
        // 300 requests held at the upstream at once need 300 upstream connections. When they all finish together, the
        // router used to keep 256 of them idle and close the rest, so the next burst of 300 opened 44 again.
        const int Burst = 300;
        var gate = new BurstGate(Burst);
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            while (true)
            {
                if ((await ScriptedUpstream.ReadHeadAsync(socket)).Length == 0)
                {
                    return;
                }

                await gate.ArriveAsync();
                await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        var config = new RouterConfig
        {
            Routes = [Route("r", "c")],
            Clusters = [new ClusterConfig { Id = "c", Destinations = [new DestinationConfig { Address = upstream.Address }] }],
        };
        await using var router = RouterFixture.Start(config);
        var clients = new List<RawHttpClient>();
        try
        {
            for (int i = 0; i < Burst; i++)
            {
                clients.Add(await RawHttpClient.ConnectAsync(router.EndPoint));
            }

            for (int round = 0; round < 2; round++)
            {
                await Task.WhenAll(clients.Select(c => c.SendAsync("GET / HTTP/1.1\r\nHost: t\r\n\r\n")));
                await gate.AllArrivedAsync().WaitAsync(TimeSpan.FromSeconds(30));
                gate.Release();
                var responses = await Task.WhenAll(clients.Select(c => c.ReadResponseAsync()));
                Assert.That(responses.All(r => r.StatusCode == 200), Is.True, $"round {round}: every request answered 200");

                // Each upstream connection goes back to the pool as its response ends; wait until all have.
                int pooled = 0;
                for (var deadline = DateTime.UtcNow.AddSeconds(10); DateTime.UtcNow < deadline && pooled < Burst; await Task.Delay(20))
                {
                    pooled = await PooledConnectionsAsync(router);
                }

                Assert.That(pooled, Is.EqualTo(Burst), $"round {round}: idle upstream connections kept after the burst");
            }

            Assert.That(upstream.Accepted, Is.EqualTo(Burst), "upstream connections opened over both bursts");
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }

    private static async Task<int> PooledConnectionsAsync(RouterFixture router)
    {
        using var json = JsonDocument.Parse(await router.AdminGetAsync("/admin/clusters"));
        return json.RootElement.GetProperty("clusters")[0].GetProperty("destinations")[0].GetProperty("pooledConnections").GetInt32();
    }

    /// <summary>Holds every upstream request of a burst until all of them have arrived and the test lets them go.</summary>
    private sealed class BurstGate(int size)
    {
        private readonly Lock _lock = new();
        private TaskCompletionSource _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _count;

        public Task ArriveAsync()
        {
            lock (_lock)
            {
                if (++_count == size)
                {
                    _arrived.TrySetResult();
                }

                return _release.Task;
            }
        }

        public Task AllArrivedAsync()
        {
            lock (_lock)
            {
                return _arrived.Task;
            }
        }

        public void Release()
        {
            lock (_lock)
            {
                var release = _release;
                _count = 0;
                _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
                _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
                release.TrySetResult();
            }
        }
    }
}
