using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Net.Admin;
using Router.Net.Hosting;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.Net.Admin;

/// <summary>
/// <c>/ready</c> is what a load balancer or an orchestrator probes before sending traffic: it must not say ready while
/// the proxy port still refuses connections (the admin listener starts first), nor once the router drains.
/// </summary>
public sealed class ReadinessTests
{
    [Test]
    public async Task Ready_Is503WithoutConfig_AndUntilTheProxyListenersAccept_Then200_And503WhileDraining()
    {
        await using var upstream = await TestUpstream.StartAsync("T");
        var options = new RouterHostOptions();
        options.Listen.Add(new IPEndPoint(IPAddress.Loopback, 0));
        await using var host = new RouterHost(options, NullLoggerFactory.Instance);
        var admin = new AdminEndpoints(host);

        var noConfig = admin.Handle("GET", "/ready");
        var applied = host.Applier.Apply(new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", upstream)] }, "test");
        Assert.That(applied.Applied, Is.True);
        var notListening = admin.Handle("GET", "/ready");

        host.Start();
        var listening = admin.Handle("GET", "/ready");
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            // Ready means a connection to the proxy port is accepted now.
            await probe.ConnectAsync(host.ListenEndPoints[0]).WaitAsync(TimeSpan.FromSeconds(10));
        }

        await host.StopAsync(TimeSpan.Zero);
        var draining = admin.Handle("GET", "/ready");

        Assert.Multiple(() =>
        {
            Assert.That((noConfig.Status, noConfig.Body), Is.EqualTo((503, "no config is live\n")));
            Assert.That(notListening.Status, Is.EqualTo(503));
            Assert.That(notListening.Body, Does.StartWith("starting"));
            Assert.That((listening.Status, listening.Body), Is.EqualTo((200, "ready\n")));
            Assert.That((draining.Status, draining.Body), Is.EqualTo((503, "draining\n")));
        });
    }
}
