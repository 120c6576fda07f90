using System.Text.Json;
using System.Text.Json.Serialization;
using Router.Core.Configuration;

namespace Router.Core.ControlPlane;

/// <summary>A control-plane frame. The JSON carries a <c>type</c> discriminator naming the concrete message.</summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type", UnknownDerivedTypeHandling = JsonUnknownDerivedTypeHandling.FailSerialization)]
[JsonDerivedType(typeof(HelloMessage), "hello")]
[JsonDerivedType(typeof(ConfigMessage), "config")]
[JsonDerivedType(typeof(AckMessage), "ack")]
[JsonDerivedType(typeof(NackMessage), "nack")]
[JsonDerivedType(typeof(HeartbeatMessage), "heartbeat")]
internal abstract record ControlPlaneMessage;

/// <summary>Router -> CP, first frame after the upgrade. Version and hash are what the router runs now (null/empty when nothing).</summary>
internal sealed record HelloMessage(string NodeId, string RouterVersion, long? ConfigVersion, string? ConfigHash) : ControlPlaneMessage;

/// <summary>CP -> router: a full config snapshot. <see cref="Config"/> stays raw JSON: the router validates it itself.</summary>
internal sealed record ConfigMessage(long Version, string Hash, JsonElement Config) : ControlPlaneMessage
{
    /// <summary>The config document exactly as it appeared in the frame, as UTF-8.</summary>
    public byte[] ConfigUtf8() => System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(Config).ToArray();
}

/// <summary>Router -> CP: the version was applied; <see cref="Hash"/> is the hash the router computed.</summary>
internal sealed record AckMessage(long Version, string Hash) : ControlPlaneMessage;

/// <summary>Router -> CP: the version was rejected, with every validation error.</summary>
internal sealed record NackMessage(long Version, string Hash, IReadOnlyList<ConfigError> Errors) : ControlPlaneMessage;

/// <summary>Both directions: liveness, plus the sender's view of the config version.</summary>
internal sealed record HeartbeatMessage(long? ConfigVersion) : ControlPlaneMessage;

/// <summary>Source-generated metadata for the wire messages (NativeAOT-safe, no reflection).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    AllowOutOfOrderMetadataProperties = true)]
[JsonSerializable(typeof(ControlPlaneMessage))]
internal sealed partial class ControlPlaneJsonContext : JsonSerializerContext;
