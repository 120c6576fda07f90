using System.Buffers;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.ObjectPool;

namespace Router.Net.Transport;

/// <summary>
/// A pool of arrays of one length that requests rent and return: head buffers, header slots, read and write buffers.
/// Each thread keeps what it returns, up to <see cref="PerThread"/> arrays, and spills the rest into a shared pool of up
/// to <see cref="SharedMax"/>, so what the pool retains follows the peak number of requests in flight.
/// </summary>
/// <remarks>
/// Why not ArrayPool.Shared: it keeps 32 arrays of a size per core plus one per thread. With more requests in flight
/// than that (256 connections on 2 cores) most returns were dropped and most rents allocated, ~800 B per request.
/// A connection's work runs on its event loop's thread, so rents and returns mostly meet on one thread and take no
/// lock; the shared pool evens out the threads whose returns outnumber their rents.
/// </remarks>
internal sealed class ArrayShelf<T>
{
    public const int PerThread = 256;
    public const int SharedMax = 4096;

    private static int s_shelves;

    [ThreadStatic]
    private static Local?[]? t_locals;

    private readonly int _id;
    private readonly DefaultObjectPool<T[]> _shared;

    public ArrayShelf(int length)
    {
        Length = length;
        _id = Interlocked.Increment(ref s_shelves) - 1;
        _shared = new DefaultObjectPool<T[]>(new Policy(length), SharedMax);
    }

    /// <summary>The length of every array on this shelf.</summary>
    public int Length { get; }

    /// <summary>An array of exactly <see cref="Length"/>; its contents are whatever the last user left.</summary>
    public T[] Rent()
    {
        var local = ThisThread();
        int count = local.Count;
        if (count > 0)
        {
            local.Count = count - 1;
            var array = local.Items[count - 1]!;
            local.Items[count - 1] = null;
            return array;
        }

        return _shared.Get();
    }

    /// <summary>An array of at least <paramref name="minimumLength"/>: from this shelf when it fits, else from ArrayPool.Shared.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public T[] Rent(int minimumLength) => minimumLength <= Length ? Rent() : ArrayPool<T>.Shared.Rent(minimumLength);

    /// <summary>Puts back an array from <see cref="Rent(int)"/>, by its length: this shelf's, or ArrayPool.Shared's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void ReturnAny(T[] array)
    {
        if (array.Length == Length)
        {
            Return(array);
        }
        else
        {
            ArrayPool<T>.Shared.Return(array);
        }
    }

    /// <summary>Puts back an array of exactly <see cref="Length"/>.</summary>
    public void Return(T[] array)
    {
        var local = ThisThread();
        int count = local.Count;
        if (count < PerThread)
        {
            if (count == local.Items.Length)
            {
                Array.Resize(ref local.Items, Math.Min(count * 2, PerThread));
            }

            local.Items[count] = array;
            local.Count = count + 1;
            return;
        }

        _shared.Return(array);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Local ThisThread()
    {
        var locals = t_locals;
        if (locals is not null && (uint)_id < (uint)locals.Length && locals[_id] is { } local)
        {
            return local;
        }

        return CreateLocal();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private Local CreateLocal()
    {
        var locals = t_locals;
        if (locals is null || locals.Length <= _id)
        {
            Array.Resize(ref locals, Math.Max(_id + 1, 4));
            t_locals = locals;
        }

        return locals[_id] = new Local();
    }

    private sealed class Local
    {
        public T[]?[] Items = new T[16][];
        public int Count;
    }

    private sealed class Policy(int length) : PooledObjectPolicy<T[]>
    {
        public override T[] Create() => new T[length];

        public override bool Return(T[] obj) => true;
    }
}

/// <summary>
/// The byte buffers of the request path in their steady-state sizes (<see cref="ArrayShelf{T}"/>); any other size comes
/// from ArrayPool.Shared. <see cref="Return"/> sends each array back by its length, so the two never mix up.
/// </summary>
internal static class PooledBytes
{
    private static readonly ArrayShelf<byte> Small = new(2048);
    private static readonly ArrayShelf<byte> Medium = new(4096);

    /// <summary>An array of at least <paramref name="minimumLength"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte[] Rent(int minimumLength) => minimumLength <= Small.Length ? Small.Rent() : Medium.Rent(minimumLength);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Return(byte[] array)
    {
        if (array.Length == Small.Length)
        {
            Small.Return(array);
        }
        else
        {
            Medium.ReturnAny(array);
        }
    }
}
