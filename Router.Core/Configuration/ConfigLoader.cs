using System.Text.Json;

namespace Router.Core.Configuration;

/// <summary>One validation error: where in the JSON document and what is wrong.</summary>
/// <param name="Path">JSON path, e.g. <c>$.routes[2].cluster</c>.</param>
/// <param name="Message">A plain explanation.</param>
public sealed record ConfigError(string Path, string Message)
{
    /// <inheritdoc />
    public override string ToString() => $"{Path}: {Message}";
}

/// <summary>The outcome of loading a config document: the config when valid, else every error.</summary>
public sealed class ConfigLoadResult
{
    /// <summary>The parsed config; null when <see cref="Errors"/> is not empty.</summary>
    public RouterConfig? Config { get; init; }

    /// <summary>Every error found, each with its JSON path.</summary>
    public IReadOnlyList<ConfigError> Errors { get; init; } = [];

    /// <summary>Content hash (lower-case hex SHA-256) of the document's canonical form; empty when invalid.</summary>
    public string Hash { get; init; } = "";

    /// <summary>True when the document is valid.</summary>
    public bool IsValid => Errors.Count == 0 && Config is not null;
}

/// <summary>Parses and validates config documents. The single entry point every config source uses.</summary>
public static class ConfigLoader
{
    /// <summary>Parses and fully validates a UTF-8 JSON config document, reporting every error.</summary>
    public static ConfigLoadResult Load(ReadOnlySpan<byte> utf8Json)
    {
        // STUB: replaced by the full validator (Configuration helper).
        try
        {
            var config = JsonSerializer.Deserialize(utf8Json, RouterConfigJsonContext.Default.RouterConfig);
            if (config is null)
            {
                return new ConfigLoadResult { Errors = [new ConfigError("$", "the document is empty or null")] };
            }

            return new ConfigLoadResult { Config = config, Hash = ComputeHash(config) };
        }
        catch (JsonException ex)
        {
            return new ConfigLoadResult { Errors = [new ConfigError(ex.Path ?? "$", ex.Message)] };
        }
    }

    /// <summary>Validates an already-built config object (for embedders who build config in code).</summary>
    public static ConfigLoadResult Validate(RouterConfig config)
    {
        return new ConfigLoadResult { Config = config, Hash = ComputeHash(config) };
    }

    /// <summary>Serialises a config to its canonical JSON form (camelCase, no indentation).</summary>
    public static byte[] Serialize(RouterConfig config) =>
        JsonSerializer.SerializeToUtf8Bytes(config, RouterConfigJsonContext.Default.RouterConfig);

    /// <summary>Lower-case hex SHA-256 of the config's canonical JSON.</summary>
    public static string ComputeHash(RouterConfig config) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Serialize(config)));
}
