using System.Buffers;

namespace Router.Core.ControlPlane;

/// <summary>
/// A control-plane connection's receive buffer, on either side (the hub's router session, the router's client): a
/// small array of its own for the usual frames (hello, ack, heartbeat) and, for a larger frame (a nack, a config), an
/// array rented from the shared pool that goes back as soon as the frame has been read (<see cref="Clear"/>). A
/// connection lasts as long as the router stays connected; a buffer that only grew would hold the largest frame ever
/// received (up to the 16 MiB frame limit) for all that time.
/// </summary>
internal sealed class FrameBuffer : IDisposable
{
    /// <summary>The size a connection holds between frames.</summary>
    public const int SmallSize = 4096;

    // Grow when less than this is free, so a large frame is not received a few bytes at a time.
    private const int MinFree = 1024;

    private readonly byte[] _small = new byte[SmallSize];
    private byte[] _array;
    private int _written;

    public FrameBuffer()
    {
        _array = _small;
    }

    /// <summary>Bytes held now: the small array, or the rented one while a large frame is in it.</summary>
    public int Capacity => _array.Length;

    public int WrittenCount => _written;

    public ReadOnlySpan<byte> WrittenSpan => _array.AsSpan(0, _written);

    /// <summary>The free space after what was written, at least 1 KiB (grown by doubling when less is left).</summary>
    public Memory<byte> GetFree()
    {
        if (_array.Length - _written < MinFree)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(_array.Length * 2);
            _array.AsSpan(0, _written).CopyTo(bigger);
            ReturnRented();
            _array = bigger;
        }

        return _array.AsMemory(_written);
    }

    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, _array.Length - _written);
        _written += count;
    }

    /// <summary>Empties the buffer; a rented array goes back to the pool and the small one is used again.</summary>
    public void Clear()
    {
        _written = 0;
        ReturnRented();
        _array = _small;
    }

    public void Dispose() => Clear();

    private void ReturnRented()
    {
        if (!ReferenceEquals(_array, _small))
        {
            ArrayPool<byte>.Shared.Return(_array);
        }
    }
}
