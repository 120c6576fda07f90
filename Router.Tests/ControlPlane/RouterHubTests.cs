using NUnit.Framework;
using System.Buffers;
using System.Net;
using System.Net.WebSockets;
using Router.ControlPlane.Hub;
using Router.ControlPlane.Store;
using Router.Core.Configuration;
using Router.Core.ControlPlane;

namespace Router.Tests.ControlPlane;

public sealed class RouterHubTests
{
    [TestCase(null)]
    [TestCase("wrong-token")]
    [TestCase(TestControlPlane.AdminToken)]
    public async Task Upgrade_WithoutTheRouterToken_IsRefusedWith401BeforeAnythingIsSent(string? token)
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        await cp.PutValidConfigAsync(TestConfigs.Valid(9001));
        using var ws = new ClientWebSocket();
        ws.Options.CollectHttpResponseDetails = true;
        if (token is not null)
        {
            ws.Options.SetRequestHeader("Authorization", "Bearer " + token);
        }

        var ex = Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(cp.RouterUri, CancellationToken.None));

        Assert.That(ex, Is.Not.Null);
        Assert.That(ws.HttpStatusCode, Is.EqualTo(HttpStatusCode.Unauthorized), "refused before the upgrade");
        Assert.That(ws.State, Is.Not.EqualTo(WebSocketState.Open));
        Assert.That(cp.Fleet.Snapshot(), Is.Empty);
    }

    [Test]
    public async Task Hello_WithTheCurrentHash_GetsNoPush_OnlyHeartbeats()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path, heartbeat: TimeSpan.FromMilliseconds(200));
        var (version, hash) = await cp.PutValidConfigAsync(TestConfigs.Valid(9001));
        using var ws = await cp.ConnectRawAsync();

        await SendAsync(ws, new HelloMessage("node-a", "test", version, hash));
        var first = await ReceiveAsync(ws);

        Assert.That(first, Is.TypeOf<HeartbeatMessage>(), "the first frame is a heartbeat, not a config");
        Assert.That(((HeartbeatMessage)first).ConfigVersion, Is.EqualTo(version));
        var router = await cp.GetRouterAsync("node-a");
        Assert.That(router.GetProperty("connected").GetBoolean(), Is.True);
        Assert.That(router.GetProperty("appliedVersion").GetInt64(), Is.EqualTo(version));
    }

    [Test]
    public async Task Hello_WithAnOldHash_GetsTheCurrentVersionFirst()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path, heartbeat: TimeSpan.FromMilliseconds(200));
        var v1 = await cp.PutValidConfigAsync(TestConfigs.Valid(9001));
        var v2 = await cp.PutValidConfigAsync(TestConfigs.Valid(9002));
        using var ws = await cp.ConnectRawAsync();

        await SendAsync(ws, new HelloMessage("node-a", "test", v1.Version, v1.Hash));
        var first = await ReceiveAsync(ws);

        Assert.That(first, Is.TypeOf<ConfigMessage>());
        var config = (ConfigMessage)first;
        Assert.That(config.Version, Is.EqualTo(v2.Version));
        Assert.That(config.Hash, Is.EqualTo(v2.Hash));
        Assert.That(config.Config.GetProperty("clusters")[0].GetProperty("destinations")[0].GetProperty("address").GetString(), Is.EqualTo("127.0.0.1:9002"));
    }

    [Test]
    public async Task Router_ThatGoesSilent_IsMarkedDisconnected()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path, heartbeat: TimeSpan.FromMilliseconds(150));
        using var ws = await cp.ConnectRawAsync();
        await SendAsync(ws, new HelloMessage("quiet", "test", null, null));
        await cp.WaitForFleetAsync(f => f.Count == 1 && f[0].Connected, "router connected");

        // Never send anything again (and never read): after 3 heartbeat intervals the CP gives up on it.
        await cp.WaitForFleetAsync(f => f.Count == 1 && !f[0].Connected, "silent router marked disconnected");

        var router = await cp.GetRouterAsync("quiet");
        Assert.That(router.GetProperty("connected").GetBoolean(), Is.False);
    }

    [Test]
    public async Task Router_ThatCloses_IsMarkedDisconnected()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        using var ws = await cp.ConnectRawAsync();
        await SendAsync(ws, new HelloMessage("closer", "test", null, null));
        await cp.WaitForFleetAsync(f => f.Count == 1 && f[0].Connected, "router connected");

        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);

        await cp.WaitForFleetAsync(f => f.Count == 1 && !f[0].Connected, "closed router marked disconnected");
    }

    [Test]
    public async Task Session_AfterALargeFrame_HoldsOnlyItsSmallReceiveBufferAgain()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        using var ws = await cp.ConnectRawAsync();
        await SendAsync(ws, new HelloMessage("verbose", "test", null, null));
        await cp.WaitForFleetAsync(f => f.Count == 1 && f[0].Connected, "router connected");
        long idle = cp.Hub.ReceiveBufferBytes;

        // A nack with a few thousand errors: a 4 MiB frame, far beyond the small buffer.
        var errors = new List<ConfigError>();
        for (int i = 0; i < 4000; i++)
        {
            errors.Add(new ConfigError($"$.routes[{i}].cluster", new string('x', 1024)));
        }

        await SendAsync(ws, new NackMessage(7, "hash7", errors));
        await cp.WaitForFleetAsync(f => f.Count == 1 && f[0].LastNackVersion == 7, "the large nack recorded");

        Assert.That(cp.Fleet.Snapshot()[0].LastNackErrors, Has.Count.EqualTo(4000), "the whole frame was read");
        Assert.That(idle, Is.EqualTo(FrameBuffer.SmallSize));
        Assert.That(cp.Hub.ReceiveBufferBytes, Is.EqualTo(idle), "the session no longer holds the array the 4 MiB nack needed");
    }

    [Test]
    public async Task Session_ThatFallsBehind_SkipsSupersededVersionsAndSendsOnlyTheLatest()
    {
        var socket = new RecordingWebSocket();
        using var received = new FrameBuffer();
        var session = new RouterSession(1, "slow", socket, received);
        session.Offer(Version(1));
        session.Offer(Version(2));
        session.Offer(Version(3));
        session.Offer(Version(2)); // older than what is pending: ignored
        using var cts = new CancellationTokenSource();

        var loop = session.RunSendLoopAsync(TimeSpan.FromHours(1), () => 3, cts.Token);
        var sent = await socket.NextSendAsync();
        session.Offer(Version(3)); // already offered: ignored
        session.Offer(Version(4));
        var next = await socket.NextSendAsync();
        await cts.CancelAsync();

        Assert.That(((ConfigMessage)Parse(sent)).Version, Is.EqualTo(3));
        Assert.That(((ConfigMessage)Parse(next)).Version, Is.EqualTo(4));
        Assert.ThrowsAsync(Is.InstanceOf<OperationCanceledException>(), () => loop);
        Assert.That(socket.SendCount, Is.EqualTo(2));
    }

    private static StoredConfig Version(long version) =>
        new(new StoredVersionInfo(version, "hash" + version, DateTimeOffset.UtcNow, "test"), System.Text.Encoding.UTF8.GetBytes(TestConfigs.Valid(9000 + (int)version)));

    private static ControlPlaneMessage Parse(byte[] frame)
    {
        Assert.That(ControlPlaneCodec.TryParse(frame, out var message, out var error), Is.True, error);
        return message!;
    }

    internal static async Task SendAsync(WebSocket ws, ControlPlaneMessage message) =>
        await ws.SendAsync(ControlPlaneCodec.Serialize(message), WebSocketMessageType.Text, true, CancellationToken.None);

    internal static async Task<ControlPlaneMessage> ReceiveAsync(WebSocket ws)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            var result = await ws.ReceiveAsync(buffer.GetMemory(4096), timeout.Token);
            Assert.That(result.MessageType, Is.EqualTo(WebSocketMessageType.Text));
            buffer.Advance(result.Count);
            if (result.EndOfMessage)
            {
                return Parse(buffer.WrittenSpan.ToArray());
            }
        }
    }

    /// <summary>A WebSocket that records sent frames, so the send loop can be tested without timing.</summary>
    private sealed class RecordingWebSocket : WebSocket
    {
        private readonly System.Threading.Channels.Channel<byte[]> _sent = System.Threading.Channels.Channel.CreateUnbounded<byte[]>();

        public int SendCount { get; private set; }

        public override WebSocketCloseStatus? CloseStatus => null;

        public override string? CloseStatusDescription => null;

        public override WebSocketState State => WebSocketState.Open;

        public override string? SubProtocol => null;

        public async Task<byte[]> NextSendAsync() => await _sent.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        public override ValueTask SendAsync(ReadOnlyMemory<byte> buffer, WebSocketMessageType messageType, bool endOfMessage, CancellationToken cancellationToken)
        {
            SendCount++;
            _sent.Writer.TryWrite(buffer.ToArray());
            return ValueTask.CompletedTask;
        }

        public override Task SendAsync(ArraySegment<byte> buffer, WebSocketMessageType messageType, bool endOfMessage, CancellationToken cancellationToken) =>
            SendAsync(buffer.AsMemory(), messageType, endOfMessage, cancellationToken).AsTask();

        public override void Abort()
        {
        }

        public override Task CloseAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken) => Task.CompletedTask;

        public override Task CloseOutputAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken) => Task.CompletedTask;

        public override void Dispose()
        {
        }

        public override Task<WebSocketReceiveResult> ReceiveAsync(ArraySegment<byte> buffer, CancellationToken cancellationToken) =>
            throw new NotSupportedException();
    }
}
