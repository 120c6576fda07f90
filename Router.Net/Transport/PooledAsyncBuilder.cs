using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using Microsoft.Extensions.ObjectPool;

namespace Router.Net.Transport;

/// <summary>
/// An async method builder for <see cref="ValueTask{TResult}"/> methods whose state machine box, needed the first
/// time the method waits, comes from a shared pool and goes back to it when the caller takes the result. So a wait's
/// state lives in a box only while it is pending: an idle keep-alive connection holds none (the request loop's
/// <c>ServeRequestAsync</c>), and the transport's waits (a read or a send that has to wait for the socket) allocate
/// nothing in steady state.
/// </summary>
/// <remarks>
/// <para>
/// The runtime's <see cref="PoolingAsyncValueTaskMethodBuilder{TResult}"/> keeps one box per thread and one per core;
/// one event-loop pass starts many waits (a batch of requests, each now waiting for its upstream) and a later pass
/// ends many, so boxes are rented and returned in bursts larger than those slots, and the rest are allocated again. This pool keeps up to <see cref="MaxRetained"/> boxes per method, which covers
/// the concurrency a router sees; beyond it, boxes are allocated and dropped as usual.
/// </para>
/// <para>
/// Rules for a method using it: its result is awaited exactly once (the box is reused afterwards), and it does not
/// change <see cref="AsyncLocal{T}"/> values (the first synchronous part runs without the runtime's save and restore
/// of the execution context). The execution context captured at each wait flows as usual.
/// </para>
/// </remarks>
[StructLayout(LayoutKind.Auto)]
internal struct PooledAsyncBuilder<TResult>
{
    /// <summary>Boxes kept per async method.</summary>
    internal const int MaxRetained = 1024;

    private PooledBox<TResult>? _box;
    private Exception? _exception;
    private TResult _result;

    public static PooledAsyncBuilder<TResult> Create() => default;

    /// <summary>The method's result: synchronous when it never waited, otherwise backed by its box.</summary>
    public ValueTask<TResult> Task
    {
        get
        {
            if (_box is { } box)
            {
                return new ValueTask<TResult>(box, box.Version);
            }

            return _exception switch
            {
                null => new ValueTask<TResult>(_result),
                OperationCanceledException canceled => Canceled(canceled.CancellationToken),
                _ => ValueTask.FromException<TResult>(_exception),
            };
        }
    }

    /// <summary>Canceled, not faulted, as the runtime's builders report a method that threw cancellation.</summary>
    private static ValueTask<TResult> Canceled(CancellationToken token)
    {
        var source = new TaskCompletionSource<TResult>();
        source.TrySetCanceled(token);
        return new ValueTask<TResult>(source.Task);
    }

    public void Start<TStateMachine>(ref TStateMachine stateMachine)
        where TStateMachine : IAsyncStateMachine => stateMachine.MoveNext();

    public void SetStateMachine(IAsyncStateMachine stateMachine)
    {
        // Boxing is ours (GetBox); the compiler only calls this for builders that let it box.
    }

    public void SetResult(TResult result)
    {
        if (_box is { } box)
        {
            box.SetResult(result);
        }
        else
        {
            _result = result;
        }
    }

    public void SetException(Exception exception)
    {
        if (_box is { } box)
        {
            box.SetException(exception);
        }
        else
        {
            _exception = exception;
        }
    }

    public void AwaitOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : INotifyCompletion
        where TStateMachine : IAsyncStateMachine => awaiter.OnCompleted(GetBox(ref stateMachine).Continuation);

    public void AwaitUnsafeOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : ICriticalNotifyCompletion
        where TStateMachine : IAsyncStateMachine => awaiter.UnsafeOnCompleted(GetBox(ref stateMachine).Continuation);

    private PooledBox<TStateMachine, TResult> GetBox<TStateMachine>(ref TStateMachine stateMachine)
        where TStateMachine : IAsyncStateMachine
    {
        var context = ExecutionContext.Capture();
        if (_box is PooledBox<TStateMachine, TResult> existing)
        {
            existing.Context = context;
            return existing;
        }

        var box = PooledBox<TStateMachine, TResult>.Rent();
        box.Context = context;

        // This builder lives inside the state machine: set the box first, so the copy moved into the box carries it.
        _box = box;
        box.StateMachine = stateMachine;
        return box;
    }
}

/// <summary>The result side of a pooled state machine box: what awaiting callers see.</summary>
internal abstract class PooledBox<TResult> : IValueTaskSource<TResult>
{
    // Continuations run inline, where the result was set (the event loop thread), as the transport's own waits do.
    private ManualResetValueTaskSourceCore<TResult> _core;

    public short Version => _core.Version;

    public void SetResult(TResult result) => _core.SetResult(result);

    public void SetException(Exception exception) => _core.SetException(exception);

    public TResult GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            _core.Reset();
            Return();
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    /// <summary>Clears the state machine and puts the box back in its pool.</summary>
    protected abstract void Return();
}

/// <summary>The box for one async method's state machine, and that method's pool of them.</summary>
internal sealed class PooledBox<TStateMachine, TResult> : PooledBox<TResult>
    where TStateMachine : IAsyncStateMachine
{
    private static readonly DefaultObjectPool<PooledBox<TStateMachine, TResult>> s_pool =
        new(new Policy(), PooledAsyncBuilder<TResult>.MaxRetained);

    private static readonly ContextCallback s_moveNext = static box => ((PooledBox<TStateMachine, TResult>)box!).StateMachine!.MoveNext();

    public TStateMachine? StateMachine;
    public ExecutionContext? Context;

    private PooledBox()
    {
        // One delegate per box, made once: every wait hands out the same continuation.
        Continuation = MoveNext;
    }

    public Action Continuation { get; }

    public static PooledBox<TStateMachine, TResult> Rent() => s_pool.Get();

    protected override void Return() => s_pool.Return(this);

    private void MoveNext()
    {
        var context = Context;
        if (context is null)
        {
            StateMachine!.MoveNext();
        }
        else
        {
            ExecutionContext.Run(context, s_moveNext, this);
        }
    }

    private sealed class Policy : PooledObjectPolicy<PooledBox<TStateMachine, TResult>>
    {
        public override PooledBox<TStateMachine, TResult> Create() => new();

        public override bool Return(PooledBox<TStateMachine, TResult> box)
        {
            // Drop what the finished request referenced (connection, route, buffers) while the box waits in the pool.
            box.StateMachine = default;
            box.Context = null;
            return true;
        }
    }
}
