using NUnit.Framework;
using Router.Net.Transport;

namespace Router.Tests.Net.Transport;

/// <summary>
/// The pools of the request path's arrays (<see cref="ArrayShelf{T}"/>, <see cref="PooledBytes"/>): as many arrays in
/// flight as there are requests, all of them reused afterwards, whichever thread returns them.
/// </summary>
public sealed class ArrayShelfTests
{
    [Test]
    public void ManyMoreInFlightThanArrayPoolSharedKeeps_AreAllReused()
    {
        // ArrayPool.Shared keeps 32 a size per core: 1,000 rented at once and returned were mostly dropped there.
        var shelf = new ArrayShelf<int>(16);
        var first = new HashSet<int[]>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < 1_000; i++)
        {
            first.Add(shelf.Rent());
        }

        foreach (var array in first)
        {
            shelf.Return(array);
        }

        var second = new List<int[]>();
        for (int i = 0; i < 1_000; i++)
        {
            second.Add(shelf.Rent());
        }

        Assert.Multiple(() =>
        {
            Assert.That(second.All(a => a.Length == 16), Is.True);
            Assert.That(second.Count(first.Contains), Is.EqualTo(1_000), "arrays reused");
            Assert.That(second.Distinct(ReferenceEqualityComparer.Instance).Count(), Is.EqualTo(1_000), "no array handed out twice");
        });
    }

    [Test]
    public async Task ArraysReturnedOnAnotherThread_AreRentedAgainOnThisOne()
    {
        // More than one thread keeps for itself: the rest reach the shared pool, where any thread finds them.
        var shelf = new ArrayShelf<byte>(64);
        int count = ArrayShelf<byte>.PerThread + 500;
        var rented = new List<byte[]>();
        for (int i = 0; i < count; i++)
        {
            rented.Add(shelf.Rent());
        }

        await Task.Factory.StartNew(
            () =>
            {
                foreach (var array in rented)
                {
                    shelf.Return(array);
                }
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);

        var again = new HashSet<byte[]>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < 500; i++)
        {
            again.Add(shelf.Rent());
        }

        Assert.That(again.Count(a => rented.Contains(a)), Is.EqualTo(500));
    }

    [TestCase(1, 2048)]
    [TestCase(2048, 2048)]
    [TestCase(2049, 4096)]
    [TestCase(4096, 4096)]
    [TestCase(4097, 8192)]
    public void PooledBytes_GivesAtLeastTheLengthAskedFor_AndTakesItBack(int asked, int length)
    {
        var array = PooledBytes.Rent(asked);
        Assert.That(array, Has.Length.EqualTo(length));
        PooledBytes.Return(array);
        Assert.That(PooledBytes.Rent(asked), Is.SameAs(array));
    }
}
