using System.Text.Json.Serialization;

namespace Router.ControlPlane.Store;

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(StoreIndex))]
internal sealed partial class StoreJsonContext : JsonSerializerContext;
