using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.Logging;
using Router.Core.Resilience;
using Router.Core.Routing;
using Router.Net.Http1;
using Router.Net.Observability;
using Router.Net.Transport;
using HttpMethod = Router.Net.Http1.HttpMethod;
using HttpVersion = Router.Net.Http1.HttpVersion;

namespace Router.Net.Forwarding;

/// <summary>
/// One client connection: reads request heads, routes them on the live snapshot, forwards each to an upstream and
/// streams both bodies. Requests on a connection are handled one after another, so pipelined responses stay in order.
/// </summary>
internal sealed partial class ProxyConnection
{
    private readonly ProxyRuntime _runtime;
    private readonly ITransportConnection _client;
    private readonly HttpRequestHead _request = new();
    private readonly byte[] _clientAddress;
    private readonly bool _https;
    private readonly Action? _closed;

    private ChunkedDecoder _requestChunks;
    private ChunkedDecoder _responseChunks;
    private UpstreamConnection? _upstream;

    // The destinations the current request already tried, for its retries (allocated on the connection's first retry).
    private DestinationState?[]? _tried;

    // Per-request metrics state: when the head was parsed, the status sent, and whose counters get it.
    private long _requestStart;
    private int _status;
    private RequestCounters? _counters;

    // Access-log fields of the current request (only read when the access log is on).
    private string? _routeId;
    private ClusterState? _servedBy;
    private DestinationState? _destination;
    private long _responseBytes;
    private long _upstreamStart;
    private long _upstreamTicks;
    private UpstreamOutcome _outcome;
    private bool _local;

    // Deadlines in Environment.TickCount64 ms; long.MaxValue = none. Checked by the shared heartbeat.
    private long _headDeadline = long.MaxValue;
    private long _responseDeadline = long.MaxValue;
    private long _idleDeadline = long.MaxValue;
    private int _responseTimeoutMs;
    private int _headDeadlineIsKeepAlive;
    private int _timedOut;
    private int _idle;

    // Request body rate (HttpLimits.MinRequestBodyDataRate): bytes read and time spent waiting on the client while a
    // body is copied; the heartbeat compares them. Time the upstream holds us back (flush) is not counted.
    private long _bodyBytes;
    private long _bodyWaitMs;
    private long _bodyWaitStart = long.MaxValue;
    private int _bodyRateActive;
    private int _bodyTooSlow;

    /// <param name="runtime">The router's shared state.</param>
    /// <param name="client">The client connection, owned from now on.</param>
    /// <param name="https">True on a TLS listener.</param>
    /// <param name="closed">Called once the connection closed (the listener's slot back), or null.</param>
    public ProxyConnection(ProxyRuntime runtime, ITransportConnection client, bool https, Action? closed = null)
    {
        _runtime = runtime;
        _client = client;
        _https = https;
        _closed = closed;
        _clientAddress = client.FormatRemoteAddress();
    }

    /// <summary>Serves the connection until it closes, then calls the <c>closed</c> callback given at construction.</summary>
    /// <remarks>
    /// The request loop is the connection's one long-lived async method (no wrapper awaiting it), and it is small: an
    /// idle keep-alive connection holds it and the transport's wait, nothing per request.
    /// Never throws: a connection that cannot start (its transport fails to register) is closed at once, and the
    /// <c>closed</c> callback still runs, so the listener's slot comes back.
    /// </remarks>
    public Task RunAsync()
    {
        try
        {
            _runtime.Register(this);
            _client.Start();
        }
        catch (Exception ex)
        {
            LogUnexpected(_runtime.Logger, ex);
            _client.Abort("start failed");
            return CloseAsync().AsTask();
        }

        return ProcessRequestsAsync();
    }

    private async ValueTask CloseAsync()
    {
        _runtime.Unregister(this);
        _request.Release();
        var upstream = Interlocked.Exchange(ref _upstream, null);
        if (upstream is not null)
        {
            await upstream.CloseAsync().ConfigureAwait(false);
        }

        try
        {
            await _client.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            _closed?.Invoke();
        }
    }

    public void Abort(string reason)
    {
        _client.Abort(reason);
        Volatile.Read(ref _upstream)?.Connection.Abort(reason);
    }

    /// <summary>
    /// During shutdown: a connection waiting for its next request closes now, with a FIN. Its wait is woken; the
    /// request loop sees the shutdown and closes gracefully (an abort would send the client a reset).
    /// </summary>
    public void CloseIfIdle()
    {
        if (Volatile.Read(ref _idle) != 0)
        {
            _client.Input.CancelPendingRead();
        }
    }

    /// <summary>From the heartbeat, once per tick: fires whichever of this connection's deadlines passed.</summary>
    public void OnHeartbeat(long nowMs)
    {
        if (nowMs > Volatile.Read(ref _headDeadline))
        {
            Volatile.Write(ref _headDeadline, long.MaxValue);
            if (Volatile.Read(ref _headDeadlineIsKeepAlive) != 0)
            {
                if (Volatile.Read(ref _idle) != 0)
                {
                    // Idle too long between requests: wake the wait, and the request loop closes with a FIN (an
                    // abort would reset a client that is about to reuse the connection).
                    Volatile.Write(ref _timedOut, (int)TimeoutKind.KeepAlive);
                    _client.Input.CancelPendingRead();
                }
                else
                {
                    // The end of a lingering close.
                    _client.Abort("keep-alive timeout");
                }
            }
            else
            {
                Volatile.Write(ref _timedOut, (int)TimeoutKind.RequestHead);
                _client.Input.CancelPendingRead();
            }
        }

        if (nowMs > Volatile.Read(ref _responseDeadline))
        {
            Volatile.Write(ref _responseDeadline, long.MaxValue);
            Volatile.Write(ref _timedOut, (int)TimeoutKind.ResponseHead);
            Volatile.Read(ref _upstream)?.Connection.Abort("response timeout");
        }

        if (Volatile.Read(ref _bodyRateActive) != 0 && IsBodyTooSlow(nowMs))
        {
            Volatile.Write(ref _bodyRateActive, 0);
            Volatile.Write(ref _bodyTooSlow, 1);
            _client.Input.CancelPendingRead();
        }

        if (nowMs > Volatile.Read(ref _idleDeadline))
        {
            Volatile.Write(ref _idleDeadline, long.MaxValue);
            Volatile.Write(ref _timedOut, (int)TimeoutKind.BodyIdle);
            Abort("body idle timeout");
        }
    }

    private bool IsBodyTooSlow(long nowMs)
    {
        var limits = _runtime.Limits;
        if (limits.MinRequestBodyDataRate <= 0)
        {
            return false;
        }

        long waitStart = Volatile.Read(ref _bodyWaitStart);
        long waited = Volatile.Read(ref _bodyWaitMs) + (waitStart == long.MaxValue ? 0 : Math.Max(0, nowMs - waitStart));
        return waited > limits.MinRequestBodyDataRateGrace.TotalMilliseconds
            && Volatile.Read(ref _bodyBytes) < limits.MinRequestBodyDataRate * waited / 1000;
    }

    /// <summary>
    /// Request body bytes went up: the response timeout counts from the last of them, not from the head, so an upload
    /// that takes longer than the timeout is not cut while the upstream takes it in (nginx and Envoy start theirs once
    /// the request is sent). Only while the response head is awaited: once it came (no deadline), nothing is re-armed.
    /// </summary>
    private void RequestBodyWentUp()
    {
        long deadline = Volatile.Read(ref _responseDeadline);
        if (deadline != long.MaxValue)
        {
            Interlocked.CompareExchange(ref _responseDeadline, Environment.TickCount64 + _responseTimeoutMs, deadline);
        }
    }

    private void BeginClientBodyRead()
    {
        // With Expect: 100-continue the client rightly waits for the upstream's 100 first: its clock starts with its first byte.
        if (_request.ExpectContinue && Volatile.Read(ref _bodyBytes) == 0)
        {
            return;
        }

        Volatile.Write(ref _bodyWaitStart, Environment.TickCount64);
    }

    private void EndClientBodyRead(long bytes)
    {
        long start = Interlocked.Exchange(ref _bodyWaitStart, long.MaxValue);
        if (start != long.MaxValue)
        {
            Interlocked.Add(ref _bodyWaitMs, Environment.TickCount64 - start);
        }

        Interlocked.Add(ref _bodyBytes, bytes);
    }

    private async Task<CopyStatus> CopyRequestBodyAsync(UpstreamConnection upstream)
    {
        Volatile.Write(ref _bodyBytes, 0);
        Volatile.Write(ref _bodyWaitMs, 0);
        Volatile.Write(ref _bodyWaitStart, long.MaxValue);
        Volatile.Write(ref _bodyTooSlow, 0);
        Volatile.Write(ref _bodyRateActive, 1);
        CopyStatus status;
        if (_request.Chunked)
        {
            status = await CopyChunkedRequestBodyAsync(upstream.Output).ConfigureAwait(false);
        }
        else
        {
            status = await CopyRequestBodyAsync(upstream.Output, _request.ContentLength).ConfigureAwait(false);
        }

        Volatile.Write(ref _bodyRateActive, 0);

        if (status is not (CopyStatus.Done or CopyStatus.DestinationClosed))
        {
            // Without the whole body the upstream can never answer: unblock the response read. Not when the upstream
            // is the side that closed: it may have answered first (413, 401), and its answer is still to be read.
            upstream.Connection.Abort("request body failed: " + status);
        }

        return status;
    }

    private async Task TunnelAsync(UpstreamConnection upstream, CompiledRoute route)
    {
        // After 101 both sides speak another protocol: bytes flow both ways until either side closes.
        HeadWriter.WriteResponse(_client.Output, upstream.Response, closeClient: false, clientHttp10: false, tunnel: true, noFraming: true);
        await _client.Output.FlushAsync().ConfigureAwait(false);
        Volatile.Write(ref _upstream, null);
        var up = CopyUntilCloseAsync(_client, upstream.Output, route: null).AsTask();
        var down = CopyUntilCloseAsync(upstream.Connection, _client.Output, route: null).AsTask();
        var first = await Task.WhenAny(up, down).ConfigureAwait(false);
        bool graceful = await first.ConfigureAwait(false) == CopyStatus.Done;
        if (graceful)
        {
            // One side closed after sending everything, and all of it reached the other side's kernel: pass the FIN
            // on (a half-close, as TCP proxies do) and let the other direction finish. A reset here would drop what
            // the kernel has not sent yet.
            await (first == up ? upstream.Output : _client.Output).CompleteAsync().ConfigureAwait(false);

            // A half-closed tunnel must not wait for ever on a peer that never closes its side (HAProxy's
            // client-fin / server-fin timeouts): the other direction gets the cluster's idle timeout to finish, then
            // the heartbeat cuts the client, which ends both copies.
            Volatile.Write(ref _idleDeadline, Environment.TickCount64 + route.Cluster.Config.IdleTimeoutMs);
            graceful = await (first == up ? down : up).ConfigureAwait(false) == CopyStatus.Done;
            Volatile.Write(ref _idleDeadline, long.MaxValue);
        }

        if (!graceful)
        {
            upstream.Connection.Abort("tunnel broken");
            _client.Abort("tunnel broken");
        }

        await Task.WhenAll(up, down).ConfigureAwait(false);
        await upstream.CloseAsync(graceful).ConfigureAwait(false);
    }

    private async ValueTask CloseUpstreamAsync(UpstreamConnection upstream)
    {
        Volatile.Write(ref _upstream, null);
        await upstream.CloseAsync().ConfigureAwait(false);
    }

    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private async ValueTask<bool> RespondLocalAsync(int status, bool keepAlive, byte[]? extraHeaders = null)
    {
        _status = status;
        _local = true;
        // A body we did not read cannot be skipped safely without reading it: close instead.
        if (_request.HasBody)
        {
            keepAlive = false;
        }

        if (!keepAlive)
        {
            await RespondAndCloseAsync(status, extraHeaders).ConfigureAwait(false);
            return false;
        }

        HeadWriter.WriteLocal(_client.Output, status, close: false, extraHeaders);
        var flush = await _client.Output.FlushAsync().ConfigureAwait(false);
        return !flush.IsCompleted;
    }

    /// <summary>A 503 the router chose to send: over a limit or nothing available. Says so, and when to come back.</summary>
    private ValueTask<bool> RespondShedAsync(ShedReason reason, bool keepAlive)
    {
        _runtime.CountShed(reason);
        return RespondLocalAsync(503, keepAlive, ShedHeaders.For(reason));
    }

    /// <summary>Answers with an error and <c>Connection: close</c>, then lingers briefly so the client reads it before the close.</summary>
    private async ValueTask RespondAndCloseAsync(int status, byte[]? extraHeaders = null)
    {
        _status = status;
        _local = true;
        HeadWriter.WriteLocal(_client.Output, status, close: true, extraHeaders);
        await _client.Output.FlushAsync().ConfigureAwait(false);
        await LingerAsync().ConfigureAwait(false);
    }

    /// <summary>How long a closing connection keeps draining what the client still sends (nginx's lingering_time is 30 s, its lingering_timeout 5 s).</summary>
    private const int LingerMs = 2000;

    /// <summary>
    /// Ends the client connection after a response that left part of the request unread: a FIN, then the client's
    /// bytes drained for a moment (as nginx's lingering_close), so the kernel does not answer them with a reset that
    /// could destroy the response before the client reads it.
    /// </summary>
    private async ValueTask LingerAsync()
    {
        await _client.Output.CompleteAsync().ConfigureAwait(false);
        Volatile.Write(ref _headDeadlineIsKeepAlive, 1);
        Volatile.Write(ref _headDeadline, Environment.TickCount64 + LingerMs);
        var input = _client.Input;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await input.ReadAsync().ConfigureAwait(false);
            }
            catch (IOException)
            {
                return;
            }

            input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                return;
            }
        }
    }

    private void BeginRequest()
    {
        _requestStart = Stopwatch.GetTimestamp();
        _status = 0;
        _counters = _runtime.Metrics.NoRoute;
        _routeId = null;
        _servedBy = null;
        _destination = null;
        _responseBytes = 0;
        _upstreamTicks = 0;
        _outcome = UpstreamOutcome.Success;
        _local = false;
    }

    /// <summary>Counts the request once its response went out; a client that vanished first (status 0) is not counted.</summary>
    private void RecordRequest()
    {
        long elapsed = Stopwatch.GetTimestamp() - _requestStart;
        if (_status != 0)
        {
            _counters?.Record(_status, elapsed);
        }

        _counters = null;
        if (_runtime.AccessLog is { } log)
        {
            bool parsed = _request.Length > 0;
            log.Record(
                _clientAddress,
                parsed ? _request[_request.MethodToken] : default,
                parsed ? _request[_request.Host] : default,
                parsed ? _request[_request.Target] : default,
                _routeId,
                _servedBy?.Id,
                _destination?.Address,
                _status,
                _responseBytes,
                elapsed,
                _upstreamTicks,
                _local && _outcome == UpstreamOutcome.Success ? "local" : OutcomeNames.Of(_outcome));
        }
    }

    private void SelectCounters(CompiledRoute route, ClusterState cluster)
    {
        if (route.Metrics is not RequestCounters[] slots || ReferenceEquals(cluster, route.Cluster))
        {
            return;
        }

        var fallbacks = route.Fallbacks;
        for (int i = 0; i < fallbacks.Length; i++)
        {
            if (ReferenceEquals(fallbacks[i], cluster))
            {
                _counters = slots[i + 1];
                return;
            }
        }
    }

    private void Touch(CompiledRoute? route)
    {
        if (route is not null)
        {
            Volatile.Write(ref _idleDeadline, Environment.TickCount64 + route.Cluster.Config.IdleTimeoutMs);
        }
    }

    private enum TimeoutKind
    {
        None = 0,
        KeepAlive,
        RequestHead,
        ResponseHead,
        BodyIdle,
    }

    private readonly record struct ForwardResult(UpstreamOutcome Outcome, bool Responded, bool KeepAlive, bool BodyStarted);

    [LoggerMessage(EventId = 200, Level = LogLevel.Error, Message = "Unexpected failure on a client connection")]
    private static partial void LogUnexpected(ILogger logger, Exception ex);

    [LoggerMessage(EventId = 201, Level = LogLevel.Debug, Message = "Rejected request with {Status}: {Reason}")]
    private static partial void LogRejected(ILogger logger, int status, string reason);

    [LoggerMessage(EventId = 202, Level = LogLevel.Warning, Message = "Connect to {Destination} failed: {Error}")]
    private static partial void LogConnectFailed(ILogger logger, string destination, UpstreamConnectError error);

    [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "Upstream {Destination} gave no usable response ({Head}): {Outcome}")]
    private static partial void LogUpstreamFailed(ILogger logger, string destination, ResponseHeadStatus head, UpstreamOutcome outcome);

    [LoggerMessage(EventId = 204, Level = LogLevel.Warning, Message = "Response stream from {Destination} broke ({Status}); client connection cut")]
    private static partial void LogStreamBroken(ILogger logger, string destination, CopyStatus status);
}

internal enum ResponseHeadStatus
{
    Ok,
    ClosedBeforeResponse,
    Failed,
    Invalid,
}

internal enum CopyStatus
{
    Done,

    /// <summary>The source closed before the body's end.</summary>
    SourceEnded,

    /// <summary>The source connection failed (reset, aborted).</summary>
    SourceFailed,

    /// <summary>The destination stopped reading (closed).</summary>
    DestinationClosed,

    /// <summary>Chunked framing was invalid.</summary>
    InvalidFraming,

    /// <summary>A request body passed <c>HttpLimits.MaxRequestBodyBytes</c>; nothing past the limit was forwarded.</summary>
    TooLarge,
}
