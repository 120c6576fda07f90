using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace Router.Core.Configuration;

/// <summary>
/// Walks a parsed JSON document against the shape of the config model and reports every unknown field, wrong JSON
/// type, duplicate property and misplaced null, each with its path. The shape comes from the source-generated
/// metadata, so a field added to the model is known here without further work.
/// </summary>
/// <remarks>
/// It also writes a cleaned copy of the document with every offending value left out (array elements are replaced
/// by an empty value so indices stay put). Deserialising that copy cannot fail, so the semantic validator still
/// runs and all errors come out of one pass.
/// <para>
/// Every field the document leaves out is written with the model's default value. The source generator builds
/// records with init-only properties through an object initializer that sets every property, so without this a
/// missing field would come out as 0 or null instead of its documented default (dotnet/runtime#84484).
/// </para>
/// </remarks>
internal sealed class JsonShapeWalker
{
    private readonly JsonSerializerContext _context;
    private readonly List<ConfigError> _errors = [];
    private readonly List<string> _dropped = [];
    private readonly Dictionary<string, int> _positions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _ends = new(StringComparer.Ordinal);
    private readonly Func<Type, object?> _defaults;
    private readonly Dictionary<Type, JsonElement> _defaultJson = [];
    private readonly Utf8JsonWriter _writer;

    private JsonShapeWalker(JsonSerializerContext context, Func<Type, object?> defaults, IBufferWriter<byte> output)
    {
        _context = context;
        _defaults = defaults;
        _writer = new Utf8JsonWriter(output);
    }

    private enum Shape
    {
        String,
        Integer,
        Number,
        Boolean,
        Object,
        Array,
    }

    /// <summary>Shape errors, in document order.</summary>
    public IReadOnlyList<ConfigError> Errors => _errors;

    /// <summary>Paths whose value was left out of the cleaned copy because its type was wrong.</summary>
    public IReadOnlyList<string> DroppedPaths => _dropped;

    /// <summary>Every path seen, mapped to its pre-order position in the document (the root "$" is 0).</summary>
    public IReadOnlyDictionary<string, int> Positions => _positions;

    /// <summary>
    /// For each object or array path: the position just after its last descendant. A field the document leaves out
    /// sorts there, at the end of the object it is missing from.
    /// </summary>
    public IReadOnlyDictionary<string, int> EndPositions => _ends;

    /// <summary>
    /// Walks <paramref name="root"/> as a <paramref name="rootType"/> and writes the cleaned copy to
    /// <paramref name="output"/>. <paramref name="defaults"/> gives a default-constructed instance of each object type.
    /// </summary>
    public static JsonShapeWalker Walk(JsonElement root, Type rootType, JsonSerializerContext context, Func<Type, object?> defaults, IBufferWriter<byte> output)
    {
        var walker = new JsonShapeWalker(context, defaults, output);
        walker._positions["$"] = 0;
        if (walker.Accepts(root, rootType, nullable: false, "$"))
        {
            walker.WriteValue(root, rootType, "$");
        }
        else
        {
            walker.WritePlaceholder(rootType);
        }

        walker._writer.Flush();
        walker._writer.Dispose();
        return walker;
    }

    /// <summary>Appends a property to a JSON path: <c>$.name</c>, or <c>$['odd name']</c> when it is not a plain identifier.</summary>
    public static string PropertyPath(string parent, string name)
    {
        bool plain = name.Length > 0 && !char.IsAsciiDigit(name[0]);
        foreach (char c in name)
        {
            plain &= char.IsAsciiLetterOrDigit(c) || c == '_';
        }

        return plain ? parent + "." + name : parent + "['" + name.Replace("'", "\\'", StringComparison.Ordinal) + "']";
    }

    private void WriteValue(JsonElement value, Type type, string path)
    {
        if (value.ValueKind == JsonValueKind.Null)
        {
            _writer.WriteNullValue();
            return;
        }

        switch (ShapeOf(type))
        {
            case Shape.Object:
                WriteObject(value, _context.GetTypeInfo(type)!, path);
                _ends[path] = _positions.Count;
                break;
            case Shape.Array:
                Type elementType = _context.GetTypeInfo(type)!.ElementType!;
                _writer.WriteStartArray();
                int index = 0;
                foreach (JsonElement item in value.EnumerateArray())
                {
                    string itemPath = path + "[" + index + "]";
                    _positions.TryAdd(itemPath, _positions.Count);
                    if (Accepts(item, elementType, nullable: Nullable.GetUnderlyingType(elementType) is not null, itemPath))
                    {
                        WriteValue(item, elementType, itemPath);
                    }
                    else
                    {
                        WritePlaceholder(elementType);
                    }

                    index++;
                }

                _writer.WriteEndArray();
                _ends[path] = _positions.Count;
                break;
            default:
                value.WriteTo(_writer);
                break;
        }
    }

    private void WriteObject(JsonElement value, JsonTypeInfo typeInfo, string path)
    {
        var known = new Dictionary<string, JsonPropertyInfo>(StringComparer.Ordinal);
        foreach (JsonPropertyInfo property in typeInfo.Properties)
        {
            known[property.Name] = property;
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        var written = new HashSet<string>(StringComparer.Ordinal);
        _writer.WriteStartObject();
        foreach (JsonProperty member in value.EnumerateObject())
        {
            string memberPath = PropertyPath(path, member.Name);
            _positions.TryAdd(memberPath, _positions.Count);
            if (!known.TryGetValue(member.Name, out JsonPropertyInfo? property))
            {
                _errors.Add(new ConfigError(memberPath, UnknownFieldMessage(member.Name, known.Keys)));
                continue;
            }

            if (!seen.Add(member.Name))
            {
                _errors.Add(new ConfigError(memberPath, $"the field '{member.Name}' appears more than once in this object"));
                continue;
            }

            if (Accepts(member.Value, property.PropertyType, property.IsSetNullable, memberPath))
            {
                _writer.WritePropertyName(member.Name);
                WriteValue(member.Value, property.PropertyType, memberPath);
                written.Add(member.Name);
            }
        }

        foreach (JsonProperty fallback in DefaultsOf(typeInfo).EnumerateObject())
        {
            if (!written.Contains(fallback.Name))
            {
                fallback.WriteTo(_writer);
            }
        }

        _writer.WriteEndObject();
    }

    private JsonElement DefaultsOf(JsonTypeInfo typeInfo)
    {
        if (!_defaultJson.TryGetValue(typeInfo.Type, out JsonElement defaults))
        {
            object instance = _defaults(typeInfo.Type)
                ?? throw new NotSupportedException($"No default instance is known for {typeInfo.Type.Name}; add it to the defaults of the config loader.");
            defaults = JsonSerializer.SerializeToElement(instance, typeInfo);
            _defaultJson[typeInfo.Type] = defaults;
        }

        return defaults;
    }

    // Reports and returns false when the JSON value's kind does not fit the expected type.
    private bool Accepts(JsonElement value, Type type, bool nullable, string path)
    {
        Shape shape = ShapeOf(type);
        if (value.ValueKind == JsonValueKind.Null)
        {
            if (nullable)
            {
                return true;
            }

            Drop(path, $"must not be null; expected {Describe(shape)}");
            return false;
        }

        bool fits = shape switch
        {
            Shape.String => value.ValueKind == JsonValueKind.String,
            Shape.Integer => value.ValueKind == JsonValueKind.Number,
            Shape.Number => value.ValueKind == JsonValueKind.Number,
            Shape.Boolean => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
            Shape.Object => value.ValueKind == JsonValueKind.Object,
            _ => value.ValueKind == JsonValueKind.Array,
        };
        if (!fits)
        {
            Drop(path, $"expected {Describe(shape)} but found {Describe(value.ValueKind)}");
            return false;
        }

        if (shape == Shape.Integer && !value.TryGetInt32(out _))
        {
            Drop(path, $"expected a whole number from {int.MinValue} to {int.MaxValue} but found {value.GetRawText()}");
            return false;
        }

        if (shape == Shape.Number && (!value.TryGetDouble(out double number) || !double.IsFinite(number)))
        {
            Drop(path, $"the number {value.GetRawText()} is too large");
            return false;
        }

        return true;
    }

    private void Drop(string path, string message)
    {
        _errors.Add(new ConfigError(path, message));
        _dropped.Add(path);
    }

    // Keeps array indices stable when an element is dropped: the validator then sees an empty value at that index
    // and its errors there are suppressed in favour of the type error.
    private void WritePlaceholder(Type type)
    {
        switch (ShapeOf(type))
        {
            case Shape.Object:
                _writer.WriteStartObject();
                _writer.WriteEndObject();
                break;
            case Shape.Array:
                _writer.WriteStartArray();
                _writer.WriteEndArray();
                break;
            case Shape.String:
                _writer.WriteStringValue("");
                break;
            case Shape.Boolean:
                _writer.WriteBooleanValue(false);
                break;
            default:
                _writer.WriteNumberValue(0);
                break;
        }
    }

    private Shape ShapeOf(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (type == typeof(string))
        {
            return Shape.String;
        }

        if (type == typeof(int) || type == typeof(long))
        {
            return Shape.Integer;
        }

        if (type == typeof(double))
        {
            return Shape.Number;
        }

        if (type == typeof(bool))
        {
            return Shape.Boolean;
        }

        return _context.GetTypeInfo(type)?.Kind switch
        {
            JsonTypeInfoKind.Object => Shape.Object,
            JsonTypeInfoKind.Enumerable => Shape.Array,
            _ => throw new NotSupportedException($"The config model uses {type.Name}, which the shape walker does not know."),
        };
    }

    private static string Describe(Shape shape) => shape switch
    {
        Shape.String => "a string",
        Shape.Integer => "a whole number",
        Shape.Number => "a number",
        Shape.Boolean => "true or false",
        Shape.Object => "an object",
        _ => "an array",
    };

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        _ => "null",
    };

    private static string UnknownFieldMessage(string name, IEnumerable<string> known)
    {
        string? suggestion = null;
        int best = int.MaxValue;
        foreach (string candidate in known)
        {
            int distance = string.Equals(candidate, name, StringComparison.OrdinalIgnoreCase)
                ? 0
                : EditDistance(candidate.ToLowerInvariant(), name.ToLowerInvariant());
            if (distance < best && distance <= 2)
            {
                best = distance;
                suggestion = candidate;
            }
        }

        return suggestion is null
            ? $"unknown field '{name}'"
            : $"unknown field '{name}'; did you mean '{suggestion}'?";
    }

    private static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j], current[j - 1]) + 1);
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
