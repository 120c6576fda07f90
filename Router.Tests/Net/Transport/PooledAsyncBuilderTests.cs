using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using NUnit.Framework;
using Router.Net.Transport;

namespace Router.Tests.Net.Transport;

/// <summary>
/// The pooled async method builder (<see cref="PooledAsyncBuilder{TResult}"/>) seen from its callers: results and
/// exceptions, synchronous or after a wait; boxes reused from the pool rather than allocated; many in flight at once;
/// and the execution context flowing across a resumption on another thread.
/// </summary>
public sealed class PooledAsyncBuilderTests
{
    private const int Cycles = 1_000;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private static readonly AsyncLocal<int> Ambient = new();

    public enum Completion
    {
        /// <summary>The source completes on the test thread before anyone awaits the method's result.</summary>
        InlineBeforeAwait,

        /// <summary>The caller awaits first; the source completes from the thread pool while it waits.</summary>
        FromAnotherThreadWhileAwaited,
    }

    public enum Taking
    {
        /// <summary>The result is taken after the method completed.</summary>
        AfterCompletion,

        /// <summary>The result is taken by a continuation registered before completion, which runs inline as the
        /// method completes (the request loop's case), so the box goes back to its pool inside its own MoveNext.</summary>
        ByInlineContinuation,
    }

    [Test]
    public void SynchronousCompletion_ReturnsTheResult_AlreadyCompleted()
    {
        var task = PooledAddAsync(ValueTask.FromResult(40), 2);

        Assert.Multiple(() =>
        {
            Assert.That(task.IsCompletedSuccessfully, Is.True);
            Assert.That(task.Result, Is.EqualTo(42));
        });
    }

    [Test]
    public void SynchronousCompletion_AllocatesNothing()
    {
        var completed = ValueTask.FromResult(1);
        long sum = 0;
        int pending = 0;
        for (int i = 0; i < 100; i++)
        {
            var task = PooledAddAsync(completed, i);
            if (task.IsCompletedSuccessfully)
            {
                sum += task.Result;
            }
            else
            {
                pending++;
            }
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Cycles; i++)
        {
            var task = PooledAddAsync(completed, i);
            if (task.IsCompletedSuccessfully)
            {
                sum += task.Result;
            }
            else
            {
                pending++;
            }
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Multiple(() =>
        {
            Assert.That(pending, Is.Zero, "calls not completed synchronously");
            Assert.That(sum, Is.EqualTo(100 + (100 * 99 / 2) + Cycles + ((long)Cycles * (Cycles - 1) / 2)));
            Assert.That(allocated, Is.Zero, "bytes allocated by synchronously completed calls");
        });
    }

    [TestCase(Completion.InlineBeforeAwait)]
    [TestCase(Completion.FromAnotherThreadWhileAwaited)]
    public async Task SuspendedMethod_ReturnsItsResult_AfterResumption(Completion completion)
    {
        var source = new ReusableSource();
        var task = PooledAddAsync(source.WaitAsync(), 2);
        Assert.That(task.IsCompleted, Is.False, "the method waits for its source");

        int result;
        if (completion == Completion.InlineBeforeAwait)
        {
            source.SetResult(40);
            Assert.That(task.IsCompletedSuccessfully, Is.True, "resumed and completed inline");
            result = await task;
        }
        else
        {
            var awaiting = AwaitAsync(task);
            await Task.Run(() => source.SetResult(40));
            result = await awaiting.WaitAsync(Timeout);
        }

        Assert.That(result, Is.EqualTo(42));
    }

    [Test]
    public async Task SeveralWaitsInOneCall_ReuseTheCallsBox_AndReturnTheResult()
    {
        var source = new ReusableSource();
        var task = PooledSumAsync(source, 3);
        for (int i = 1; i <= 3; i++)
        {
            Assert.That(task.IsCompleted, Is.False, $"still waiting before value {i}");
            source.SetResult(i * 10);
        }

        Assert.That(task.IsCompletedSuccessfully, Is.True);
        Assert.That(await task, Is.EqualTo(60));
    }

    [Test]
    public void Cancellation_BeforeAnyWait_IsReportedAsCanceled_LikeTheDefaultBuilder()
    {
        var canceled = PooledThrowAsync(ValueTask.FromResult(0), new OperationCanceledException(), beforeWait: true);

        Assert.Multiple(() =>
        {
            Assert.That(canceled.IsCanceled, Is.True);
            Assert.That(canceled.IsFaulted, Is.False);
        });
    }

    [Test]
    public async Task Exceptions_BeforeAndAfterAWait_SurfaceFromAwait_AsTheThrownException()
    {
        var before = new InvalidOperationException("thrown by the method");
        var after = new InvalidOperationException("thrown by the method");
        var source = new ReusableSource();

        var synchronous = PooledThrowAsync(source.WaitAsync(), before, beforeWait: true);
        Assert.That(synchronous.IsFaulted, Is.True, "thrown before any wait: faulted at once");
        var seenBefore = await CaughtAsync(synchronous);

        var suspended = PooledThrowAsync(source.WaitAsync(), after, beforeWait: false);
        Assert.That(suspended.IsCompleted, Is.False, "waiting before it throws");
        source.SetResult(0);
        Assert.That(suspended.IsFaulted, Is.True, "thrown after the wait: faulted once resumed");
        var seenAfter = await CaughtAsync(suspended);

        Assert.Multiple(() =>
        {
            Assert.That(seenBefore, Is.SameAs(before));
            Assert.That(seenAfter, Is.SameAs(after));
            Assert.That(seenAfter!.GetType(), Is.EqualTo(seenBefore!.GetType()));
            Assert.That(seenAfter.Message, Is.EqualTo(seenBefore.Message));
        });

        // A faulted box goes back to the pool in a usable state: the next call through it succeeds.
        var next = PooledThrowAsync(source.WaitAsync(), null, beforeWait: false);
        source.SetResult(5);
        Assert.That(await next, Is.EqualTo(5));
    }

    /// <summary>
    /// Steady state, on one thread: each cycle calls the method, which suspends on a reusable source; the source
    /// completes inline, the method resumes and completes, and the result is taken. With the pooled builder the box
    /// rented by the first cycle serves every later one; the same method shape on the default builder allocates a box
    /// each cycle, which shows that the pool is what makes the difference.
    /// </summary>
    [TestCase(Taking.AfterCompletion)]
    [TestCase(Taking.ByInlineContinuation)]
    public void SequentialSuspendingCalls_ReuseTheBox_WhereTheDefaultBuilderAllocatesOneEachTime(Taking taking)
    {
        var pooled = new Cycler(PooledAddAsync);
        var control = new Cycler(DefaultAddAsync);

        var pooledBytes = pooled.Measure(taking);
        var controlBytes = control.Measure(taking);

        Assert.Multiple(() =>
        {
            Assert.That(pooled.Suspended, Is.EqualTo(pooled.Calls), "every pooled call suspended");
            Assert.That(control.Suspended, Is.EqualTo(control.Calls), "every default-builder call suspended");
            Assert.That(pooled.Sum, Is.EqualTo(pooled.ExpectedSum), "pooled results");
            Assert.That(control.Sum, Is.EqualTo(control.ExpectedSum), "default-builder results");
            Assert.That((double)pooledBytes / Cycles, Is.LessThan(1.0), $"bytes per cycle, pooled builder ({pooledBytes} in all)");
            Assert.That((double)controlBytes / Cycles, Is.GreaterThanOrEqualTo(32.0), $"bytes per cycle, default builder ({controlBytes} in all)");
        });
    }

    /// <summary>
    /// The request loop's shape: the caller's continuation runs inline as the call completes (inside the box's own
    /// MoveNext), takes the result, which returns the box, and at once starts the next call, which rents that same box
    /// while the previous call's MoveNext is still on the stack.
    /// </summary>
    [Test]
    public void NextCall_StartedFromTheInlineContinuation_ReusesTheBoxSafely()
    {
        var loop = new ContinuationLoop();
        loop.Start();
        for (int i = 0; i < 100; i++)
        {
            loop.Source.SetResult(i);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 100; i < 100 + Cycles; i++)
        {
            loop.Source.SetResult(i);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        var total = 100 + Cycles;
        Assert.Multiple(() =>
        {
            Assert.That(loop.Error, Is.Null);
            Assert.That(loop.Results, Is.EqualTo(total));
            Assert.That(loop.Sum, Is.EqualTo(((long)total * (total - 1) / 2) + (3L * total)));
            Assert.That(loop.Pending.IsCompleted, Is.False, "the last call started waits for the next value");
            Assert.That((double)allocated / Cycles, Is.LessThan(1.0), $"bytes per cycle ({allocated} in all)");
        });
    }

    [TestCase(100)]
    [TestCase(PooledAsyncBuilder<int>.MaxRetained + 100)]
    public async Task ManyCallsInFlight_EachGetsItsOwnResult_InEveryRound(int count)
    {
        // Several rounds: the second and third rent, all at once, boxes the previous round returned in another order.
        for (int round = 0; round < 3; round++)
        {
            var sources = new ReusableSource[count];
            var tasks = new ValueTask<int>[count];
            for (int i = 0; i < count; i++)
            {
                sources[i] = new ReusableSource();
                // Kept to await later, once each: the point is to have them all in flight together.
#pragma warning disable CA2012
                tasks[i] = PooledAddAsync(sources[i].WaitAsync(), i * 1_000);
#pragma warning restore CA2012
            }

            Assert.That(tasks.Count(t => t.IsCompleted), Is.Zero, "all calls wait");

            // Completion in a permutation of the start order (37 is coprime with the counts used).
            for (int k = 0; k < count; k++)
            {
                var i = (int)((k * 37L + round) % count);
                sources[i].SetResult(i + round);
            }

            Assert.That(tasks.Count(t => !t.IsCompletedSuccessfully), Is.Zero, "all calls completed");

            // Results taken in reverse start order.
            var results = new int[count];
            for (int i = count - 1; i >= 0; i--)
            {
                results[i] = await tasks[i];
            }

            var expected = Enumerable.Range(0, count).Select(i => (i * 1_000) + i + round).ToArray();
            Assert.That(results, Is.EqualTo(expected), $"round {round}");
        }
    }

    [Test]
    public async Task ExecutionContext_CapturedAtTheWait_FlowsIntoTheResumption_OnAnotherThread()
    {
        Ambient.Value = 42;
        var source = new TaskCompletionSource<int>();
        var task = PooledReadAmbientAfterWaitAsync(source.Task);
        Assert.That(task.IsCompleted, Is.False);

        int completerBefore = -1;
        int completerAfter = -1;
        var completer = new Thread(() =>
        {
            completerBefore = Ambient.Value;
            Ambient.Value = 7;

            // Runs the method's continuation inline on this thread.
            source.SetResult(0);
            completerAfter = Ambient.Value;
        });

        // UnsafeStart: the completing thread does not inherit the test's context, so only the builder can carry it.
        completer.UnsafeStart();
        Assert.That(completer.Join(Timeout), Is.True, "the completing thread finished");
        Assert.That(task.IsCompletedSuccessfully, Is.True, "completed on the completing thread");

        var (seen, threadId) = await task;
        Assert.Multiple(() =>
        {
            Assert.That(completerBefore, Is.Zero, "the completing thread starts without the test's value");
            Assert.That(threadId, Is.EqualTo(completer.ManagedThreadId), "resumed on the completing thread");
            Assert.That(seen, Is.EqualTo(42), "the value the caller set, seen after the wait");
            Assert.That(completerAfter, Is.EqualTo(7), "the completing thread's own context restored after the method ran");
            Assert.That(Ambient.Value, Is.EqualTo(42), "the caller's value unchanged");
        });
    }

    [Test]
    public async Task ExecutionContext_ChangedBetweenWaits_FlowsIntoTheLaterResumption()
    {
        Ambient.Value = 42;
        var first = new ReusableSource();
        var second = new ReusableSource();
        var task = PooledChangeAmbientBetweenWaitsAsync(first, second);

        // Resumes inline here, sets the value to 5 inside the method, and waits again.
        first.SetResult(0);
        Assert.Multiple(() =>
        {
            Assert.That(task.IsCompleted, Is.False, "waiting for the second value");
            Assert.That(Ambient.Value, Is.EqualTo(42), "the method's change stays inside the method");
        });

        var completer = new Thread(() => second.SetResult(0));
        completer.UnsafeStart();
        Assert.That(completer.Join(Timeout), Is.True, "the completing thread finished");
        Assert.That(task.IsCompletedSuccessfully, Is.True, "completed on the completing thread");

        var (seen, threadId) = await task;
        Assert.Multiple(() =>
        {
            Assert.That(threadId, Is.EqualTo(completer.ManagedThreadId), "resumed on the completing thread");
            Assert.That(seen, Is.EqualTo(5), "the context captured at the second wait, not the first");
        });
    }

    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private static async ValueTask<int> PooledAddAsync(ValueTask<int> value, int addend) =>
        await value.ConfigureAwait(false) + addend;

    /// <summary>The same shape as <see cref="PooledAddAsync"/>, on the default builder.</summary>
    private static async ValueTask<int> DefaultAddAsync(ValueTask<int> value, int addend) =>
        await value.ConfigureAwait(false) + addend;

    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private static async ValueTask<int> PooledSumAsync(ReusableSource source, int count)
    {
        int sum = 0;
        for (int i = 0; i < count; i++)
        {
            sum += await source.WaitAsync().ConfigureAwait(false);
        }

        return sum;
    }

    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private static async ValueTask<int> PooledThrowAsync(ValueTask<int> wait, Exception? exception, bool beforeWait)
    {
        if (beforeWait && exception is not null)
        {
            throw exception;
        }

        var value = await wait.ConfigureAwait(false);
        if (exception is not null)
        {
            throw exception;
        }

        return value;
    }

    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private static async ValueTask<(int Seen, int ThreadId)> PooledReadAmbientAfterWaitAsync(Task wait)
    {
        await wait.ConfigureAwait(false);
        var seen = Ambient.Value;

        // Changed after the wait, inside the context the box runs the method in: must not leak to the completing thread.
        Ambient.Value = -1;
        return (seen, Environment.CurrentManagedThreadId);
    }

    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private static async ValueTask<(int Seen, int ThreadId)> PooledChangeAmbientBetweenWaitsAsync(ReusableSource first, ReusableSource second)
    {
        await first.WaitAsync().ConfigureAwait(false);
        Ambient.Value = 5;
        await second.WaitAsync().ConfigureAwait(false);
        return (Ambient.Value, Environment.CurrentManagedThreadId);
    }

    private static async Task<int> AwaitAsync(ValueTask<int> task) => await task;

    private static async Task<Exception?> CaughtAsync(ValueTask<int> task)
    {
        try
        {
            await task;
            return null;
        }
        catch (Exception ex)
        {
            return ex;
        }
    }

    /// <summary>A reusable wait: continuations run inline, on the thread that sets the result.</summary>
    private sealed class ReusableSource : IValueTaskSource<int>
    {
        private ManualResetValueTaskSourceCore<int> _core;

        public ValueTask<int> WaitAsync() => new(this, _core.Version);

        public void SetResult(int value) => _core.SetResult(value);

        public int GetResult(short token)
        {
            try
            {
                return _core.GetResult(token);
            }
            finally
            {
                _core.Reset();
            }
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }

    /// <summary>Runs sequential suspend, resume and take cycles of one method on the current thread.</summary>
    private sealed class Cycler
    {
        private readonly Func<ValueTask<int>, int, ValueTask<int>> _method;
        private readonly ReusableSource _source = new();
        private readonly Action _take;
        private ValueTask<int> _pending;

        public Cycler(Func<ValueTask<int>, int, ValueTask<int>> method)
        {
            _method = method;
            _take = Take;
        }

        public int Calls { get; private set; }

        public int Suspended { get; private set; }

        public long Sum { get; private set; }

        /// <summary>Each call i adds 1 to the value i: the sum of 1 to Calls.</summary>
        public long ExpectedSum => (long)Calls * (Calls + 1) / 2;

        /// <summary>Warms up, then returns the bytes allocated on this thread by <see cref="Cycles"/> cycles.</summary>
        public long Measure(Taking taking)
        {
            Run(100, taking);
            var before = GC.GetAllocatedBytesForCurrentThread();
            Run(Cycles, taking);
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }

        private void Run(int cycles, Taking taking)
        {
            for (int i = 0; i < cycles; i++)
            {
                var value = Calls++;
                // Kept in a field for the continuation, which takes its result once.
#pragma warning disable CA2012
                _pending = _method(_source.WaitAsync(), 1);
#pragma warning restore CA2012
                if (!_pending.IsCompleted)
                {
                    Suspended++;
                }

                if (taking == Taking.ByInlineContinuation)
                {
                    _pending.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_take);
                    _source.SetResult(value);
                }
                else
                {
                    _source.SetResult(value);
                    Take();
                }
            }
        }

        private void Take() => Sum += _pending.Result;
    }

    /// <summary>A caller that takes each result in a continuation running inline as the call completes, and there
    /// starts the next call.</summary>
    private sealed class ContinuationLoop
    {
        private readonly Action _next;

        public ContinuationLoop() => _next = Next;

        public ReusableSource Source { get; } = new();

        public ValueTask<int> Pending { get; private set; }

        public int Results { get; private set; }

        public long Sum { get; private set; }

        public Exception? Error { get; private set; }

        public void Start() => Call();

        private void Call()
        {
            // Kept in a property for the continuation, which takes its result once.
#pragma warning disable CA2012
            Pending = PooledAddAsync(Source.WaitAsync(), 3);
#pragma warning restore CA2012
            Pending.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_next);
        }

        private void Next()
        {
            try
            {
                Sum += Pending.Result;
                Results++;
                Call();
            }
            catch (Exception ex)
            {
                Error ??= ex;
            }
        }
    }
}
