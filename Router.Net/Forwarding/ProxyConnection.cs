using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.Logging;
using Router.Core.Resilience;
using Router.Core.Routing;
using Router.Net.Http1;
using Router.Net.Transport;
using HttpMethod = Router.Net.Http1.HttpMethod;
using HttpVersion = Router.Net.Http1.HttpVersion;

namespace Router.Net.Forwarding;

/// <summary>
/// One client connection: reads request heads, routes them on the live snapshot, forwards each to an upstream and
/// streams both bodies. Requests on a connection are handled one after another, so pipelined responses stay in order.
/// </summary>
internal sealed partial class ProxyConnection : IHeartbeatTarget
{
    private readonly ProxyRuntime _runtime;
    private readonly ITransportConnection _client;
    private readonly HttpRequestHead _request = new();
    private readonly byte[] _clientAddress;
    private readonly bool _https;

    private ChunkedDecoder _requestChunks;
    private ChunkedDecoder _responseChunks;
    private UpstreamConnection? _upstream;

    // Deadlines in Environment.TickCount64 ms; long.MaxValue = none. Checked by the shared heartbeat.
    private long _headDeadline = long.MaxValue;
    private long _responseDeadline = long.MaxValue;
    private long _idleDeadline = long.MaxValue;
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

    public ProxyConnection(ProxyRuntime runtime, ITransportConnection client, bool https)
    {
        _runtime = runtime;
        _client = client;
        _https = https;
        _clientAddress = FormatAddress(client.RemoteEndPoint);
    }

    public async Task RunAsync()
    {
        _runtime.Register(this);
        _runtime.Heartbeat.Add(this);
        _client.Start();
        try
        {
            await ProcessRequestsAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogUnexpected(_runtime.Logger, ex);
        }
        finally
        {
            _runtime.Heartbeat.Remove(this);
            _runtime.Unregister(this);
            _request.Release();
            var upstream = Interlocked.Exchange(ref _upstream, null);
            if (upstream is not null)
            {
                await upstream.CloseAsync().ConfigureAwait(false);
            }

            await _client.DisposeAsync().ConfigureAwait(false);
        }
    }

    public void Abort(string reason)
    {
        _client.Abort(reason);
        Volatile.Read(ref _upstream)?.Connection.Abort(reason);
    }

    /// <summary>During shutdown: a connection waiting for its next request closes now.</summary>
    public void CloseIfIdle()
    {
        if (Volatile.Read(ref _idle) != 0)
        {
            _client.Abort("shutdown: idle keep-alive closed");
        }
    }

    public void OnHeartbeat(long nowMs)
    {
        if (nowMs > Volatile.Read(ref _headDeadline))
        {
            Volatile.Write(ref _headDeadline, long.MaxValue);
            if (Volatile.Read(ref _headDeadlineIsKeepAlive) != 0)
            {
                _client.Abort("keep-alive timeout");
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

    private async Task ProcessRequestsAsync()
    {
        var input = _client.Input;
        var limits = _runtime.Limits;
        while (!_runtime.ShuttingDown)
        {
            Volatile.Write(ref _headDeadlineIsKeepAlive, 1);
            Volatile.Write(ref _headDeadline, Environment.TickCount64 + (long)limits.KeepAliveTimeout.TotalMilliseconds);
            Volatile.Write(ref _idle, 1);
            bool parsed = false;
            while (!parsed)
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

                var buffer = result.Buffer;
                if (result.IsCanceled)
                {
                    if (Volatile.Read(ref _timedOut) == (int)TimeoutKind.RequestHead)
                    {
                        input.AdvanceTo(buffer.Start, buffer.End);
                        await RespondAndCloseAsync(408).ConfigureAwait(false);
                        return;
                    }

                    input.AdvanceTo(buffer.Start);
                    continue;
                }

                if (buffer.IsEmpty && result.IsCompleted)
                {
                    return;
                }

                if (Volatile.Read(ref _idle) != 0)
                {
                    // First byte of a request: the header timeout now runs instead of keep-alive.
                    Volatile.Write(ref _idle, 0);
                    Volatile.Write(ref _headDeadlineIsKeepAlive, 0);
                    Volatile.Write(ref _headDeadline, Environment.TickCount64 + (long)limits.HeaderTimeout.TotalMilliseconds);
                }

                var reader = new SequenceReader<byte>(buffer);
                try
                {
                    parsed = Http1Parser.TryParseRequestHead(ref reader, _request, limits);
                }
                catch (Http1Exception ex)
                {
                    input.AdvanceTo(buffer.End);
                    LogRejected(_runtime.Logger, ex.StatusCode, ex.Message);
                    await RespondAndCloseAsync(ex.StatusCode).ConfigureAwait(false);
                    return;
                }

                if (parsed)
                {
                    input.AdvanceTo(reader.Position);
                }
                else
                {
                    input.AdvanceTo(buffer.Start, buffer.End);
                    if (result.IsCompleted)
                    {
                        // The client closed in the middle of a head.
                        return;
                    }
                }
            }

            Volatile.Write(ref _headDeadline, long.MaxValue);
            bool keepAlive = await HandleRequestAsync().ConfigureAwait(false);
            _request.Release();
            if (!keepAlive)
            {
                return;
            }
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> HandleRequestAsync()
    {
        bool keepAlive = _request.KeepAlive && !_runtime.ShuttingDown;

        // Body size limit: a declared length over it is refused before any upstream is contacted (a chunked body is
        // checked while it streams, in CopyChunkedAsync). The unread body can't be skipped: close.
        if (_request.ContentLength > _runtime.Limits.MaxRequestBodyBytes)
        {
            return await RespondLocalAsync(413, keepAlive: false).ConfigureAwait(false);
        }

        var snapshot = _runtime.Table.Current;
        if (snapshot is null)
        {
            return await RespondLocalAsync(503, keepAlive).ConfigureAwait(false);
        }

        if (_request.Method == HttpMethod.Connect)
        {
            return await RespondLocalAsync(501, keepAlive).ConfigureAwait(false);
        }

        // Admission, outermost first. Every gate is a counter: no queue anywhere, over a limit is an immediate 503.
        var global = _runtime.GlobalLimit;
        if (!global.TryEnter())
        {
            return await RespondShedAsync(ShedReason.Global, keepAlive).ConfigureAwait(false);
        }

        try
        {
            var path = _request.Path.IsEmpty ? _request[_request.Target] : _request[_request.Path];
            if (!snapshot.TryMatch(_request[_request.Host], path, _request[_request.MethodToken], out var route))
            {
                return await RespondLocalAsync(404, keepAlive).ConfigureAwait(false);
            }

            if (!route.Limit.TryEnter())
            {
                return await RespondShedAsync(ShedReason.Route, keepAlive).ConfigureAwait(false);
            }

            try
            {
                return await RouteAsync(route, keepAlive).ConfigureAwait(false);
            }
            finally
            {
                route.Limit.Exit();
            }
        }
        finally
        {
            global.Exit();
        }
    }

    /// <summary>Picks a destination (primary cluster, then fallbacks), forwards, records the outcome, retries when safe.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> RouteAsync(CompiledRoute route, bool keepAlive)
    {
        DestinationState? exclude = null;
        RetryBudget? heldRetry = null;
        try
        {
            for (int attempt = 0; ; attempt++)
            {
                var selection = DestinationSelector.Select(route, exclude);
                if (selection.Destination is null)
                {
                    return await RespondShedAsync(selection.Shed, keepAlive).ConfigureAwait(false);
                }

                var cluster = selection.Cluster!;
                var destination = selection.Destination;
                ForwardResult result;
                try
                {
                    result = await ForwardAsync(route, cluster, destination, keepAlive).ConfigureAwait(false);
                }
                finally
                {
                    cluster.Limit.Exit();
                }

                DestinationSelector.Record(cluster, destination, result.Outcome, selection.IsTrial);
                if (!result.Responded && IsRetryable(result.Outcome) && attempt + 1 < (cluster.Config.Retry?.MaxAttempts ?? 1)
                    && heldRetry is null && cluster.Retries is { } budget && budget.TryAcquireRetry(Volatile.Read(ref cluster.InFlight)))
                {
                    // Nothing reached the client and the upstream cannot have acted on the request: try another destination.
                    heldRetry = budget;
                    exclude = destination;
                    _runtime.CountRetry();
                    continue;
                }

                if (result.Responded)
                {
                    return result.KeepAlive;
                }

                return result.Outcome switch
                {
                    UpstreamOutcome.ClientGone or UpstreamOutcome.StreamBroken => false,
                    UpstreamOutcome.PoolExhausted => await RespondShedAsync(ShedReason.DestinationConnections, keepAlive).ConfigureAwait(false),
                    UpstreamOutcome.BadRequestBody => await RespondLocalAsync(400, keepAlive: false).ConfigureAwait(false),
                    UpstreamOutcome.RequestBodyTooLarge => await RespondLocalAsync(413, keepAlive: false).ConfigureAwait(false),
                    UpstreamOutcome.RequestBodyTooSlow => await RespondLocalAsync(408, keepAlive: false).ConfigureAwait(false),
                    UpstreamOutcome.ConnectTimeout or UpstreamOutcome.ResponseTimeout => await RespondLocalAsync(504, keepAlive && !result.BodyStarted).ConfigureAwait(false),
                    _ => await RespondLocalAsync(502, keepAlive && !result.BodyStarted).ConfigureAwait(false),
                };
            }
        }
        finally
        {
            heldRetry?.ReleaseRetry();
        }
    }

    private bool IsRetryable(UpstreamOutcome outcome) => _request.Method is HttpMethod.Get or HttpMethod.Head or HttpMethod.Options
        or HttpMethod.Put or HttpMethod.Delete or HttpMethod.Trace
        && outcome switch
        {
            // The body is still unread in the client pipe: safe to send elsewhere.
            UpstreamOutcome.ConnectFailed or UpstreamOutcome.ConnectTimeout or UpstreamOutcome.PoolExhausted => true,
            UpstreamOutcome.NoResponse => !_request.HasBody,
            _ => false,
        };

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ForwardResult> ForwardAsync(CompiledRoute route, ClusterState cluster, DestinationState destination, bool keepAlive)
    {
        var pool = UpstreamPool.For(destination);
        var config = cluster.Config;
        Interlocked.Increment(ref destination.InFlight);
        Interlocked.Increment(ref cluster.InFlight);
        try
        {
            for (int attempt = 0; ; attempt++)
            {
                var upstream = pool.TryRent();
                bool reused = upstream is not null;
                if (upstream is null)
                {
                    try
                    {
                        upstream = await pool.ConnectAsync(config.ConnectTimeoutMs, config.MaxConnectionsPerDestination ?? 0).ConfigureAwait(false);
                    }
                    catch (UpstreamConnectException ex)
                    {
                        LogConnectFailed(_runtime.Logger, destination.Address, ex.Error);
                        var outcome = ex.Error switch
                        {
                            UpstreamConnectError.Timeout => UpstreamOutcome.ConnectTimeout,
                            UpstreamConnectError.PoolExhausted => UpstreamOutcome.PoolExhausted,
                            _ => UpstreamOutcome.ConnectFailed,
                        };
                        return new ForwardResult(outcome, Responded: false, KeepAlive: keepAlive, BodyStarted: false);
                    }
                }

                Volatile.Write(ref _upstream, upstream);
                var result = await ExchangeAsync(upstream, route, keepAlive, canRetry: reused && attempt == 0).ConfigureAwait(false);
                if (result.Outcome == UpstreamOutcome.StalePooledConnection)
                {
                    // A pooled connection the upstream had closed while idle: nothing was sent or received, retrying is safe.
                    continue;
                }

                return result;
            }
        }
        finally
        {
            Interlocked.Decrement(ref cluster.InFlight);
            Interlocked.Decrement(ref destination.InFlight);
        }
    }

    /// <summary>
    /// One request/response exchange on one upstream connection. Releases or closes the upstream connection.
    /// Writes nothing to the client unless the upstream answered; the caller answers errors.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ForwardResult> ExchangeAsync(UpstreamConnection upstream, CompiledRoute route, bool keepAlive, bool canRetry)
    {
        bool tunnel = _request.HasUpgrade && (_request.Connection & ConnectionOptions.Upgrade) != 0;
        HeadWriter.WriteRequest(upstream.Output, _request, _clientAddress, _https, tunnel);
        var flush = await upstream.Output.FlushAsync().ConfigureAwait(false);
        Task<CopyStatus>? bodyTask = null;
        if (!flush.IsCompleted && _request.HasBody)
        {
            _requestChunks.Reset();
            bodyTask = CopyRequestBodyAsync(upstream);
        }

        Volatile.Write(ref _timedOut, 0);
        Volatile.Write(ref _responseDeadline, Environment.TickCount64 + route.ResponseTimeoutMs);
        var head = await ReadResponseHeadAsync(upstream).ConfigureAwait(false);
        Volatile.Write(ref _responseDeadline, long.MaxValue);
        var response = upstream.Response;

        if (head != ResponseHeadStatus.Ok)
        {
            CopyStatus bodyStatus = CopyStatus.Done;
            if (bodyTask is not null)
            {
                upstream.Connection.Abort("no response");
                bodyStatus = await bodyTask.ConfigureAwait(false);
            }

            await CloseUpstreamAsync(upstream).ConfigureAwait(false);
            if (head == ResponseHeadStatus.ClosedBeforeResponse && canRetry && bodyTask is null)
            {
                return new ForwardResult(UpstreamOutcome.StalePooledConnection, false, keepAlive, false);
            }

            var outcome = bodyStatus switch
            {
                CopyStatus.SourceFailed when Volatile.Read(ref _bodyTooSlow) != 0 => UpstreamOutcome.RequestBodyTooSlow,

                // The client went away mid-body: nobody to answer.
                CopyStatus.SourceEnded or CopyStatus.SourceFailed => UpstreamOutcome.ClientGone,
                CopyStatus.InvalidFraming => UpstreamOutcome.BadRequestBody,
                CopyStatus.TooLarge => UpstreamOutcome.RequestBodyTooLarge,
                _ when Volatile.Read(ref _timedOut) == (int)TimeoutKind.ResponseHead => UpstreamOutcome.ResponseTimeout,
                _ => head switch
                {
                    ResponseHeadStatus.ClosedBeforeResponse => UpstreamOutcome.NoResponse,
                    _ => UpstreamOutcome.BadResponse,
                },
            };
            LogUpstreamFailed(_runtime.Logger, upstream.Destination.Address, head, outcome);
            return new ForwardResult(outcome, Responded: false, KeepAlive: keepAlive, BodyStarted: bodyTask is not null);
        }

        int code = response.StatusCode;
        var success = code >= 500 ? UpstreamOutcome.ServerError : UpstreamOutcome.Success;
        if (code == 101 && tunnel)
        {
            HeadWriter.WriteResponse(_client.Output, response, closeClient: false, clientHttp10: false, tunnel: true);
            await _client.Output.FlushAsync().ConfigureAwait(false);
            Volatile.Write(ref _upstream, null);
            await TunnelAsync(upstream).ConfigureAwait(false);
            return new ForwardResult(success, Responded: true, KeepAlive: false, BodyStarted: false);
        }

        bool noBody = _request.Method == HttpMethod.Head || code == 204 || code == 304 || code == 101;
        bool closeDelimited = !noBody && !response.Chunked && response.ContentLength < 0;
        bool closeClient = !keepAlive || closeDelimited || code == 101 || _runtime.ShuttingDown;
        HeadWriter.WriteResponse(_client.Output, response, closeClient, _request.Version == HttpVersion.Http10, tunnel: false);

        CopyStatus copy = CopyStatus.Done;
        if (!noBody)
        {
            Touch(route);
            if (response.Chunked)
            {
                _responseChunks.Reset();
                copy = await CopyChunkedAsync(upstream.Input, _client.Output, fromClient: false, route).ConfigureAwait(false);
            }
            else if (response.ContentLength > 0)
            {
                copy = await CopyLengthAsync(upstream.Input, _client.Output, response.ContentLength, route).ConfigureAwait(false);
            }
            else if (closeDelimited)
            {
                copy = await CopyUntilCloseAsync(upstream.Input, _client.Output, route).ConfigureAwait(false);
            }
        }

        Volatile.Write(ref _idleDeadline, long.MaxValue);
        var clientFlush = await _client.Output.FlushAsync().ConfigureAwait(false);
        if (copy != CopyStatus.Done || clientFlush.IsCompleted)
        {
            // The response started: the only honest signal left is to cut the client connection.
            LogStreamBroken(_runtime.Logger, upstream.Destination.Address, copy);
            if (bodyTask is not null)
            {
                _client.Input.CancelPendingRead();
                upstream.Connection.Abort("response failed");
                await bodyTask.ConfigureAwait(false);
            }

            await CloseUpstreamAsync(upstream).ConfigureAwait(false);
            _client.Abort("response stream broken");
            bool upstreamFault = copy is CopyStatus.SourceEnded or CopyStatus.SourceFailed or CopyStatus.InvalidFraming;
            return new ForwardResult(upstreamFault ? UpstreamOutcome.StreamBroken : UpstreamOutcome.ClientGone, Responded: true, KeepAlive: false, BodyStarted: true);
        }

        bool upstreamReusable = response.KeepAlive && !closeDelimited && code != 101;
        if (bodyTask is not null)
        {
            if (!bodyTask.IsCompleted)
            {
                // The upstream answered before taking the whole body; neither connection is in a known state.
                _client.Input.CancelPendingRead();
                upstream.Connection.Abort("response before request body");
                await bodyTask.ConfigureAwait(false);
                await CloseUpstreamAsync(upstream).ConfigureAwait(false);
                return new ForwardResult(success, Responded: true, KeepAlive: false, BodyStarted: true);
            }

            if (await bodyTask.ConfigureAwait(false) != CopyStatus.Done)
            {
                await CloseUpstreamAsync(upstream).ConfigureAwait(false);
                return new ForwardResult(success, Responded: true, KeepAlive: false, BodyStarted: true);
            }
        }

        Volatile.Write(ref _upstream, null);
        if (upstreamReusable)
        {
            upstream.Pool.Return(upstream);
        }
        else
        {
            await upstream.CloseAsync().ConfigureAwait(false);
        }

        return new ForwardResult(success, Responded: true, KeepAlive: !closeClient, BodyStarted: bodyTask is not null);
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
            status = await CopyChunkedAsync(_client.Input, upstream.Output, fromClient: true, route: null).ConfigureAwait(false);
        }
        else
        {
            status = await CopyLengthAsync(_client.Input, upstream.Output, _request.ContentLength, route: null).ConfigureAwait(false);
        }

        Volatile.Write(ref _bodyRateActive, 0);

        if (status != CopyStatus.Done)
        {
            // Without the whole body the upstream can never answer: unblock the response read.
            upstream.Connection.Abort("request body failed: " + status);
        }

        return status;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ResponseHeadStatus> ReadResponseHeadAsync(UpstreamConnection upstream)
    {
        var input = upstream.Input;
        var response = upstream.Response;
        bool sawBytes = false;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await input.ReadAsync().ConfigureAwait(false);
            }
            catch (IOException)
            {
                return sawBytes ? ResponseHeadStatus.Failed : ResponseHeadStatus.ClosedBeforeResponse;
            }

            var buffer = result.Buffer;
            if (result.IsCanceled)
            {
                input.AdvanceTo(buffer.Start, buffer.End);
                return ResponseHeadStatus.Failed;
            }

            sawBytes |= !buffer.IsEmpty;
            var reader = new SequenceReader<byte>(buffer);
            bool parsed;
            try
            {
                parsed = Http1Parser.TryParseResponseHead(ref reader, response, _runtime.Limits);
            }
            catch (Http1Exception)
            {
                input.AdvanceTo(buffer.End);
                return ResponseHeadStatus.Invalid;
            }

            if (!parsed)
            {
                input.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                {
                    return sawBytes ? ResponseHeadStatus.Failed : ResponseHeadStatus.ClosedBeforeResponse;
                }

                continue;
            }

            input.AdvanceTo(reader.Position);
            int code = response.StatusCode;
            if (code is >= 100 and < 200 && code != 101)
            {
                // Interim responses (100 Continue, 103 Early Hints) go to HTTP/1.1 clients as they come.
                if (_request.Version == HttpVersion.Http11)
                {
                    HeadWriter.WriteResponse(_client.Output, response, closeClient: false, clientHttp10: false, tunnel: false);
                    await _client.Output.FlushAsync().ConfigureAwait(false);
                }

                response.Reset();
                continue;
            }

            return ResponseHeadStatus.Ok;
        }
    }

    private async Task TunnelAsync(UpstreamConnection upstream)
    {
        // After 101 both sides speak another protocol: bytes flow both ways until either side closes.
        var up = CopyUntilCloseAsync(_client.Input, upstream.Output, route: null).AsTask();
        var down = CopyUntilCloseAsync(upstream.Input, _client.Output, route: null).AsTask();
        await Task.WhenAny(up, down).ConfigureAwait(false);
        await _client.Output.FlushAsync().ConfigureAwait(false);
        upstream.Connection.Abort("tunnel closed");
        _client.Abort("tunnel closed");
        await Task.WhenAll(up, down).ConfigureAwait(false);
        await upstream.CloseAsync().ConfigureAwait(false);
    }

    private async ValueTask CloseUpstreamAsync(UpstreamConnection upstream)
    {
        Volatile.Write(ref _upstream, null);
        await upstream.CloseAsync().ConfigureAwait(false);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> RespondLocalAsync(int status, bool keepAlive, byte[]? extraHeaders = null)
    {
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
        HeadWriter.WriteLocal(_client.Output, status, close: true, extraHeaders);
        await _client.Output.FlushAsync().ConfigureAwait(false);
        await _client.Output.CompleteAsync().ConfigureAwait(false);

        // Lingering close (as nginx's lingering_close): drain what the client still sends for a moment so the
        // kernel does not answer it with a reset that could destroy our response before the client reads it.
        Volatile.Write(ref _headDeadlineIsKeepAlive, 1);
        Volatile.Write(ref _headDeadline, Environment.TickCount64 + 2000);
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

    private void Touch(CompiledRoute? route)
    {
        if (route is not null)
        {
            Volatile.Write(ref _idleDeadline, Environment.TickCount64 + route.Cluster.Config.IdleTimeoutMs);
        }
    }

    private static byte[] FormatAddress(EndPoint? endPoint)
    {
        if (endPoint is IPEndPoint ip)
        {
            var address = ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address;
            return Encoding.ASCII.GetBytes(address.ToString());
        }

        return "unknown"u8.ToArray();
    }

    private enum TimeoutKind
    {
        None = 0,
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
