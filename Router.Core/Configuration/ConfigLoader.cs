using System.Buffers;
using System.Security.Cryptography;
using System.Text;
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
    private static readonly JsonDocumentOptions DocumentOptions = new()
    {
        CommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>
    /// Parses and fully validates a UTF-8 JSON config document, reporting every error in one pass: malformed JSON
    /// (with line and column), unknown fields, wrong types, and every semantic error. Errors are in document order.
    /// </summary>
    public static ConfigLoadResult Load(ReadOnlySpan<byte> utf8Json)
    {
        if (utf8Json.StartsWith(Encoding.UTF8.Preamble))
        {
            utf8Json = utf8Json[Encoding.UTF8.Preamble.Length..];
        }

        if (!HasValue(utf8Json))
        {
            return Invalid(new ConfigError("$", "the document is empty; expected a JSON object with routes and clusters"));
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8Json.ToArray(), DocumentOptions);
        }
        catch (JsonException ex)
        {
            return Invalid(MalformedJson(utf8Json, ex));
        }

        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return Invalid(new ConfigError("$", $"the document must be a JSON object with routes and clusters, but it is {Describe(root.ValueKind)}"));
            }

            var cleaned = new ArrayBufferWriter<byte>();
            JsonShapeWalker shape = JsonShapeWalker.Walk(root, typeof(RouterConfig), RouterConfigJsonContext.Default, DefaultInstance, cleaned);

            // The cleaned copy holds only known fields of the right types, so this cannot fail on user input.
            RouterConfig config = JsonSerializer.Deserialize(cleaned.WrittenSpan, RouterConfigJsonContext.Default.RouterConfig)
                ?? throw new InvalidOperationException("The cleaned config document deserialised to null.");

            var errors = new List<ConfigError>(shape.Errors);
            foreach (ConfigError error in ConfigValidator.Validate(config))
            {
                // A wrong-typed value was replaced by a default; what the validator says about that default is noise.
                if (!IsAtOrBelowAny(error.Path, shape.DroppedPaths))
                {
                    errors.Add(error);
                }
            }

            if (errors.Count > 0)
            {
                return Invalid([.. errors.OrderBy(e => PositionOf(e.Path, shape))]);
            }

            return new ConfigLoadResult { Config = config, Hash = ComputeHash(config) };
        }
    }

    /// <summary>
    /// Reads and loads a config file. A missing or unreadable file gives one error at path <c>$</c> naming the file.
    /// </summary>
    public static ConfigLoadResult LoadFile(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return Invalid(new ConfigError("$", $"the config file '{path}' does not exist"));
        }
        catch (UnauthorizedAccessException)
        {
            return Invalid(new ConfigError("$", $"the config file '{path}' cannot be read: permission denied"));
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or NotSupportedException)
        {
            return Invalid(new ConfigError("$", $"the config file '{path}' cannot be read: {ex.Message}"));
        }

        return Load(bytes);
    }

    /// <summary>
    /// Validates an already-built config object (for embedders who build config in code). Runs the semantic checks
    /// only; there is no JSON, so unknown fields and wrong types cannot occur. Paths name where the value would be in
    /// the JSON form.
    /// </summary>
    public static ConfigLoadResult Validate(RouterConfig config)
    {
        if (config is null)
        {
            return Invalid(new ConfigError("$", "the config is null"));
        }

        List<ConfigError> errors = ConfigValidator.Validate(config);
        return errors.Count > 0
            ? Invalid([.. errors])
            : new ConfigLoadResult { Config = config, Hash = ComputeHash(config) };
    }

    /// <summary>Serialises a config to its canonical JSON form (camelCase, no indentation, model field order).</summary>
    public static byte[] Serialize(RouterConfig config) =>
        JsonSerializer.SerializeToUtf8Bytes(config, RouterConfigJsonContext.Default.RouterConfig);

    /// <summary>
    /// Lower-case hex SHA-256 of the config's canonical JSON: whitespace, comments, field order and spelled-out
    /// defaults in the source document do not change it.
    /// </summary>
    public static string ComputeHash(RouterConfig config) => HashOfCanonical(Serialize(config));

    /// <summary>The hash of bytes that are already a config's canonical JSON (what <see cref="Serialize"/> wrote).</summary>
    internal static string HashOfCanonical(ReadOnlySpan<byte> canonicalJson) =>
        Convert.ToHexStringLower(SHA256.HashData(canonicalJson));

    // A default-constructed instance of each object type of the model; a new record type must be added here
    // (a test loads a document using every type, so a missing entry fails loudly).
    private static object? DefaultInstance(Type type) => type switch
    {
        _ when type == typeof(RouterConfig) => new RouterConfig(),
        _ when type == typeof(RouteConfig) => new RouteConfig(),
        _ when type == typeof(RouteMatch) => new RouteMatch(),
        _ when type == typeof(ClusterConfig) => new ClusterConfig(),
        _ when type == typeof(DestinationConfig) => new DestinationConfig(),
        _ when type == typeof(HealthCheckConfig) => new HealthCheckConfig(),
        _ when type == typeof(CircuitBreakerConfig) => new CircuitBreakerConfig(),
        _ when type == typeof(PassiveHealthConfig) => new PassiveHealthConfig(),
        _ when type == typeof(RetryConfig) => new RetryConfig(),
        _ when type == typeof(UpstreamTlsConfig) => new UpstreamTlsConfig(),
        _ when type == typeof(ListenerConfig) => new ListenerConfig(),
        _ when type == typeof(ListenerTlsConfig) => new ListenerTlsConfig(),
        _ when type == typeof(ListenerCertificateConfig) => new ListenerCertificateConfig(),
        _ => null,
    };

    private static ConfigLoadResult Invalid(params ConfigError[] errors) => new() { Errors = errors };

    private static ConfigError MalformedJson(ReadOnlySpan<byte> utf8Json, JsonException ex)
    {
        string message = ex.Message;
        int suffix = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (suffix >= 0)
        {
            message = message[..suffix];
        }

        message = message.TrimEnd('.', ' ');
        if (message.StartsWith("Expected depth to be zero", StringComparison.Ordinal))
        {
            message = "the document ends before every object and array is closed";
        }
        if (ex.LineNumber is not { } line || ex.BytePositionInLine is not { } bytePosition)
        {
            return new ConfigError("$", $"the document is not valid JSON: {message}");
        }

        return new ConfigError("$", $"line {line + 1}, column {Column(utf8Json, line, bytePosition)}: the document is not valid JSON: {message}");
    }

    // Whitespace and comments only count as an empty document, not as malformed JSON.
    private static bool HasValue(ReadOnlySpan<byte> utf8Json)
    {
        var reader = new Utf8JsonReader(utf8Json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Allow });
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType != JsonTokenType.Comment)
                {
                    return true;
                }
            }

            return false;
        }
        catch (JsonException)
        {
            // The reader refuses a document with no value; anything but whitespace after the last comment is content
            // (malformed), which the parser then reports with its position.
            return reader.TokenType is not (JsonTokenType.None or JsonTokenType.Comment)
                || !utf8Json[(int)reader.BytesConsumed..].Trim(" \t\r\n"u8).IsEmpty;
        }
    }

    // The reader reports a 0-based byte offset within the line; people count characters from 1.
    private static long Column(ReadOnlySpan<byte> utf8Json, long line, long bytePosition)
    {
        int lineStart = 0;
        for (long l = 0; l < line; l++)
        {
            int newline = utf8Json[lineStart..].IndexOf((byte)'\n');
            if (newline < 0)
            {
                return bytePosition + 1;
            }

            lineStart += newline + 1;
        }

        int end = (int)Math.Min(lineStart + bytePosition, utf8Json.Length);
        return Encoding.UTF8.GetCharCount(utf8Json[lineStart..end]) + 1;
    }

    private static bool IsAtOrBelowAny(string path, IReadOnlyList<string> ancestors)
    {
        foreach (string ancestor in ancestors)
        {
            if (path.StartsWith(ancestor, StringComparison.Ordinal)
                && (path.Length == ancestor.Length || path[ancestor.Length] is '.' or '['))
            {
                return true;
            }
        }

        return false;
    }

    // Twice the pre-order position, so a path missing from the document (a required field left out) can sort at the
    // end of the nearest object that is present, before whatever follows that object.
    private static int PositionOf(string path, JsonShapeWalker shape)
    {
        if (shape.Positions.TryGetValue(path, out int position))
        {
            return 2 * position;
        }

        while (true)
        {
            int cut = Math.Max(path.LastIndexOf('.'), path.LastIndexOf('['));
            if (cut <= 0)
            {
                return 2 * shape.EndPositions.GetValueOrDefault("$");
            }

            path = path[..cut];
            if (shape.Positions.TryGetValue(path, out position))
            {
                return shape.EndPositions.TryGetValue(path, out int end) ? (2 * end) - 1 : 2 * position;
            }
        }
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };
}
