using System.Text.Json.Serialization;

namespace Router.Core.Configuration;

/// <summary>Source-generated System.Text.Json metadata for the config model (NativeAOT-safe).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    ReadCommentHandling = System.Text.Json.JsonCommentHandling.Skip,
    AllowTrailingCommas = true)]
[JsonSerializable(typeof(RouterConfig))]
internal sealed partial class RouterConfigJsonContext : JsonSerializerContext;
