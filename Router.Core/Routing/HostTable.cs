using System.Text;

namespace Router.Core.Routing;

/// <summary>
/// Immutable open-addressing hash table from ASCII-case-insensitive host bytes to a value.
/// Keys are stored lower-cased; lookups take the request bytes as they are, so a lookup allocates nothing.
/// </summary>
/// <remarks>
/// The hash runs over the key from its last byte to its first. That lets <see cref="RouteMatcher"/> hash a
/// host once, right to left, and look up every label suffix (<c>.example.test</c>, <c>.test</c>) on the way,
/// because the running state at a dot is the hash of the suffix that starts there.
/// </remarks>
internal sealed class HostTable<TValue>
    where TValue : class
{
    private const uint Seed = 2166136261;  // FNV-1a offset basis
    private const uint Prime = 16777619;   // FNV-1a prime

    private readonly byte[]?[] _keys;
    private readonly uint[] _hashes;
    private readonly TValue?[] _values;
    private readonly int _mask;

    public HostTable(IReadOnlyDictionary<string, TValue> entries)
    {
        // Load factor <= 0.5 keeps probe chains short for lookups of absent hosts, the 404 path.
        var capacity = 4;
        while (capacity < entries.Count * 2)
        {
            capacity *= 2;
        }

        _keys = new byte[capacity][];
        _hashes = new uint[capacity];
        _values = new TValue[capacity];
        _mask = capacity - 1;

        var min = int.MaxValue;
        var max = 0;
        foreach (var (key, value) in entries)
        {
            var bytes = Encoding.UTF8.GetBytes(key);
            LowerAscii(bytes);
            min = Math.Min(min, bytes.Length);
            max = Math.Max(max, bytes.Length);
            var hash = Hash(bytes);
            var i = (int)hash & _mask;
            while (_keys[i] is { } existing)
            {
                if (existing.AsSpan().SequenceEqual(bytes))
                {
                    throw new ArgumentException($"Duplicate host key '{key}'.", nameof(entries));
                }

                i = (i + 1) & _mask;
            }

            MaxProbeLength = Math.Max(MaxProbeLength, ((i - (int)hash) & _mask) + 1);
            _keys[i] = bytes;
            _hashes[i] = hash;
            _values[i] = value;
        }

        Count = entries.Count;
        MinKeyLength = Count == 0 ? 0 : min;
        MaxKeyLength = max;
    }

    public int Count { get; }

    /// <summary>Most slots a lookup of a present key inspects; stays small when the hash spreads keys well.</summary>
    public int MaxProbeLength { get; }

    /// <summary>Length in bytes of the shortest key (0 when empty).</summary>
    public int MinKeyLength { get; }

    /// <summary>Length in bytes of the longest key (0 when empty).</summary>
    public int MaxKeyLength { get; }

    public static uint Step(uint state, byte b) =>
        // Setting 0x20 on every byte folds ASCII case without a branch. It also folds a few non-letter pairs
        // ('[' and '{', '@' and '`'), which only costs a rare extra compare: equality is checked exactly.
        (state ^ (uint)(b | 0x20)) * Prime;

    public static uint Start => Seed;

    /// <summary>Finishes a running <see cref="Step"/> state into a table hash.</summary>
    public static uint Finish(uint state)
    {
        // Murmur3 finaliser: FNV's low bits are weak and the table indexes by them.
        state ^= state >> 16;
        state *= 0x85ebca6b;
        state ^= state >> 13;
        state *= 0xc2b2ae35;
        state ^= state >> 16;
        return state;
    }

    public static uint Hash(ReadOnlySpan<byte> key)
    {
        var state = Start;
        for (var i = key.Length - 1; i >= 0; i--)
        {
            state = Step(state, key[i]);
        }

        return Finish(state);
    }

    /// <summary>Looks up <paramref name="key"/> (any ASCII case) whose <see cref="Hash"/> is <paramref name="hash"/>.</summary>
    public TValue? Find(ReadOnlySpan<byte> key, uint hash)
    {
        var keys = _keys;
        var i = (int)hash & _mask;
        while (keys[i] is { } candidate)
        {
            if (_hashes[i] == hash && candidate.Length == key.Length && EqualsLowered(candidate, key))
            {
                return _values[i];
            }

            i = (i + 1) & _mask;
        }

        return null;
    }

    public TValue? Find(ReadOnlySpan<byte> key) => Find(key, Hash(key));

    private static bool EqualsLowered(ReadOnlySpan<byte> lowered, ReadOnlySpan<byte> value)
    {
        // Ascii.EqualsIgnoreCase is vectorised but says false for any non-ASCII byte (a UTF-8 name in the
        // config); the byte loop settles those and the rare hash collision.
        if (Ascii.EqualsIgnoreCase(lowered, value))
        {
            return true;
        }

        for (var i = 0; i < value.Length; i++)
        {
            var b = value[i];
            if ((uint)(b - 'A') <= 'Z' - 'A')
            {
                b |= 0x20;
            }

            if (b != lowered[i])
            {
                return false;
            }
        }

        return true;
    }

    private static void LowerAscii(Span<byte> bytes)
    {
        for (var i = 0; i < bytes.Length; i++)
        {
            if ((uint)(bytes[i] - 'A') <= 'Z' - 'A')
            {
                bytes[i] |= 0x20;
            }
        }
    }
}
