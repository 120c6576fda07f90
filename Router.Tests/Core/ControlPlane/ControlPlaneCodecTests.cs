using System.Text;
using System.Text.Json;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Core.ControlPlane;

namespace Router.Tests.Core.ControlPlane;

public sealed class ControlPlaneCodecTests
{
    [Test]
    public void EveryMessage_RoundTrips_WithItsTypeDiscriminator()
    {
        ControlPlaneMessage[] messages =
        [
            new HelloMessage("n1", "1.0", 3, "h3"),
            new HelloMessage("n2", "1.0", null, null),
            new AckMessage(4, "h4"),
            new NackMessage(5, "h5", [new ConfigError("$.routes[0].cluster", "no such cluster")]),
            new HeartbeatMessage(6),
        ];
        string[] types = ["hello", "hello", "ack", "nack", "heartbeat"];

        for (var i = 0; i < messages.Length; i++)
        {
            var frame = ControlPlaneCodec.Serialize(messages[i]);
            using var doc = JsonDocument.Parse(frame);
            Assert.That(doc.RootElement.GetProperty("type").GetString(), Is.EqualTo(types[i]));
            Assert.That(ControlPlaneCodec.TryParse(frame, out var back, out var error), Is.True, error);
            if (back is NackMessage nack)
            {
                Assert.That(nack.Errors, Is.EqualTo(((NackMessage)messages[i]).Errors));
            }
            else
            {
                Assert.That(back, Is.EqualTo(messages[i]));
            }
        }
    }

    [Test]
    public void ConfigFrame_CarriesTheConfigAsRawJson()
    {
        var config = """{"routes":[],"clusters":[{"id":"c","destinations":[]}],"extra":{"kept":true}}"""u8.ToArray();

        var frame = ControlPlaneCodec.SerializeConfig(9, "h9", config);
        Assert.That(ControlPlaneCodec.TryParse(frame, out var message, out _), Is.True);
        var parsed = (ConfigMessage)message!;

        Assert.That(Encoding.UTF8.GetString(frame), Does.StartWith("{\"type\":\"config\",\"version\":9,\"hash\":\"h9\",\"config\":{"));
        Assert.That(parsed.ConfigUtf8(), Is.EqualTo(config));
    }

    [Test]
    public void Parse_AcceptsTheTypeAfterOtherFields()
    {
        Assert.That(ControlPlaneCodec.TryParse("""{"version":2,"hash":"x","type":"ack"}"""u8, out var message, out var error), Is.True, error);
        Assert.That(message, Is.EqualTo(new AckMessage(2, "x")));
    }

    [TestCase("""{"type":"bogus"}""")]
    [TestCase("""{"version":1}""")]
    [TestCase("not json")]
    [TestCase("null")]
    public void Parse_RejectsUnknownOrMalformedFrames(string frame)
    {
        Assert.That(ControlPlaneCodec.TryParse(Encoding.UTF8.GetBytes(frame), out var message, out var error), Is.False);
        Assert.That(message, Is.Null);
        Assert.That(error, Is.Not.Empty);
    }
}
