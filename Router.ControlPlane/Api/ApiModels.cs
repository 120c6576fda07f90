using System.Text.Json;
using System.Text.Json.Serialization;
using Router.ControlPlane.Hub;
using Router.ControlPlane.Store;
using Router.Core.Configuration;

namespace Router.ControlPlane.Api;

/// <summary><c>GET /api/config</c>.</summary>
internal sealed record ConfigResponse(long Version, string Hash, DateTimeOffset CreatedUtc, string Source, JsonElement Config);

/// <summary><c>PUT /api/config</c> and rollback: the version now current; <c>Created</c> is false when nothing changed.</summary>
internal sealed record VersionResponse(long Version, string Hash, bool Created);

/// <summary>400 body: every validation error.</summary>
internal sealed record ErrorsResponse(IReadOnlyList<ConfigError> Errors);

/// <summary>Any other error body.</summary>
internal sealed record ErrorResponse(string Error);

/// <summary><c>GET /api/config/history</c>: versions oldest first.</summary>
internal sealed record HistoryResponse(long? Current, IReadOnlyList<StoredVersionInfo> Versions);

/// <summary><c>GET /api/routers</c>.</summary>
internal sealed record RoutersResponse(IReadOnlyList<RouterStatusDto> Routers);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(ConfigResponse))]
[JsonSerializable(typeof(VersionResponse))]
[JsonSerializable(typeof(ErrorsResponse))]
[JsonSerializable(typeof(ErrorResponse))]
[JsonSerializable(typeof(HistoryResponse))]
[JsonSerializable(typeof(RoutersResponse))]
internal sealed partial class ApiJsonContext : JsonSerializerContext;
