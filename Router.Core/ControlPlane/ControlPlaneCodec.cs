using System.Text.Json;

namespace Router.Core.ControlPlane;

/// <summary>Serialises and parses control-plane frames (one JSON text message per WebSocket message).</summary>
internal static class ControlPlaneCodec
{
    /// <summary>Largest frame either side accepts. A config is sent whole, so this bounds the config size.</summary>
    public const int MaxFrameBytes = 16 * 1024 * 1024;

    /// <summary>UTF-8 JSON of the message, with its <c>type</c> discriminator first.</summary>
    public static byte[] Serialize(ControlPlaneMessage message) =>
        JsonSerializer.SerializeToUtf8Bytes(message, ControlPlaneJsonContext.Default.ControlPlaneMessage);

    /// <summary>Parses a frame; on failure <paramref name="error"/> says why (unknown type, bad JSON, missing field).</summary>
    public static bool TryParse(ReadOnlySpan<byte> utf8Frame, out ControlPlaneMessage? message, out string? error)
    {
        try
        {
            message = JsonSerializer.Deserialize(utf8Frame, ControlPlaneJsonContext.Default.ControlPlaneMessage);
            if (message is null)
            {
                error = "the frame is null";
                return false;
            }

            error = null;
            return true;
        }
        catch (JsonException ex)
        {
            message = null;
            error = ex.Message;
            return false;
        }
        catch (NotSupportedException ex)
        {
            // Thrown for a missing or unknown discriminator on an abstract base type.
            message = null;
            error = ex.Message;
            return false;
        }
    }

    /// <summary>Builds a config frame from a stored canonical config document.</summary>
    public static byte[] SerializeConfig(long version, string hash, ReadOnlySpan<byte> configUtf8)
    {
        using var doc = JsonDocument.Parse(configUtf8.ToArray());
        return Serialize(new ConfigMessage(version, hash, doc.RootElement));
    }
}
