using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>
/// What an operator relies on: the access log under hostile input and at shutdown, signals during a drain, /ready
/// while draining, metrics across reloads, and the admin API's answers.
/// </summary>
public sealed partial class OperabilityAuditTests
{
    private const int SigHup = 1;
    private const int SigTerm = 15;

    [Test]
    public async Task Drain_IdleKeepAliveConnection_IsClosedWithAFin_NotAReset()
    {
        await using var upstream = await TestUpstream.StartAsync("A");
        var router = RouterFixture.Start(new RouterConfig { Routes = [Route("r", "c")], Clusters = [Cluster("c", upstream)] });
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET /warm HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200));

        var stop = router.Host.StopAsync(TimeSpan.FromSeconds(5));
        var buffer = new byte[16];
        int received;
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            // A FIN reads as the end of the stream; a reset throws ConnectionReset.
            received = await client.Socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
        }

        Assert.That(received, Is.Zero, "the idle connection ends with a FIN");
        await stop.WaitAsync(TimeSpan.FromSeconds(5));
    }

    private static void Signal(RouterProcess router, int signal) =>
        Assert.That(Kill(router.Pid, signal), Is.Zero, "kill(2) failed: errno " + Marshal.GetLastPInvokeError());

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    private static bool CanConnect(IPEndPoint endPoint)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Connect(endPoint);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
