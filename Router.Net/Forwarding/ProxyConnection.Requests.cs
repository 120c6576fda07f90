using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Router.Core.Resilience;
using Router.Core.Routing;
using Router.Net.Http1;
using Router.Net.Tls;
using Router.Net.Transport;
using HttpMethod = Router.Net.Http1.HttpMethod;
using HttpVersion = Router.Net.Http1.HttpVersion;

namespace Router.Net.Forwarding;

// The request loop, in two levels. The connection's long-lived method (ProcessRequestsAsync) is small: it parks an
// idle keep-alive connection on the transport's wait, which holds no buffer and no state machine. Each request then
// runs in ServeRequestAsync, whose state machine box comes from a shared pool (PooledAsyncBuilder) and goes back when
// the request ends, so an idle connection holds no request state and steady-state proxying allocates nothing.
// Every wait on the common path (client head, upstream flush, upstream response head, response body) is awaited
// directly in ServeRequestAsync: an async method allocates a box the first time it suspends, so a chain of async calls
// that all wait on the upstream would allocate one box per call per request. Decisions are synchronous helpers; rare
// paths (errors, tunnels, new connections, request bodies still in flight) are separate async methods and may allocate.
internal sealed partial class ProxyConnection
{
    // Response body chunks at least this large are sent from the upstream's buffer without a copy; smaller ones are
    // copied behind the head so a small response still leaves in one send.
    private const int DirectSendMin = 16 * 1024;

    // Destinations one request may pass over: those at their connection limit plus those tried (retry.maxAttempts <= 10).
    private const int MaxTriedDestinations = 16;

    private async Task ProcessRequestsAsync()
    {
        try
        {
            var limits = _runtime.Limits;
            while (!_runtime.ShuttingDown)
            {
                Volatile.Write(ref _headDeadlineIsKeepAlive, 1);
                Volatile.Write(ref _headDeadline, Environment.TickCount64 + (long)limits.KeepAliveTimeout.TotalMilliseconds);
                Volatile.Write(ref _idle, 1);
                if (_runtime.ShuttingDown)
                {
                    // Shutdown began between the loop check and marking idle: its sweep may have missed us.
                    return;
                }

                // Parked until the next request's first bytes, holding no buffer and no request state.
                await _client.WaitForInputAsync().ConfigureAwait(false);
                if (!await ServeRequestAsync().ConfigureAwait(false))
                {
                    return;
                }
            }
        }
        catch (Exception ex)
        {
            LogUnexpected(_runtime.Logger, ex);
        }
        finally
        {
            await CloseAsync().ConfigureAwait(false);
        }
    }

    /// <summary>One request, from its head to the end of its response: true when the connection stays open for the next.</summary>
    [AsyncMethodBuilder(typeof(PooledAsyncBuilder<>))]
    private async ValueTask<bool> ServeRequestAsync()
    {
        var input = _client.Input;
        var limits = _runtime.Limits;
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
                return false;
            }

            var buffer = result.Buffer;
            if (result.IsCanceled)
            {
                if (Volatile.Read(ref _timedOut) == (int)TimeoutKind.RequestHead)
                {
                    input.AdvanceTo(buffer.Start, buffer.End);
                    BeginRequest();
                    await RespondAndCloseAsync(408).ConfigureAwait(false);
                    RecordRequest();
                    return false;
                }

                if (buffer.IsEmpty && Volatile.Read(ref _idle) != 0
                    && (_runtime.ShuttingDown || Volatile.Read(ref _timedOut) == (int)TimeoutKind.KeepAlive))
                {
                    // Woken by CloseIfIdle or the keep-alive timeout with no request begun: close (a FIN), not an abort.
                    input.AdvanceTo(buffer.Start);
                    return false;
                }

                input.AdvanceTo(buffer.Start);
                continue;
            }

            if (buffer.IsEmpty && result.IsCompleted)
            {
                return false;
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
                BeginRequest();
                await RespondAndCloseAsync(ex.StatusCode).ConfigureAwait(false);
                RecordRequest();
                return false;
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
                    return false;
                }
            }
        }

        Volatile.Write(ref _headDeadline, long.MaxValue);
        BeginRequest();
        bool keepAlive = _request.KeepAlive && !_runtime.ShuttingDown;

        var admission = Admit(out var route, out var global);
        if (route is null)
        {
            // After a refused CONNECT the client may already be sending what it meant for the tunnel (a TLS hello, or
            // requests a proxy in front passed on unread as tunnel bytes): close rather than read them as requests.
            keepAlive = admission.Shed
                ? await RespondShedAsync(admission.Reason, keepAlive).ConfigureAwait(false)
                : await RespondLocalAsync(admission.Status, keepAlive && _request.Method != HttpMethod.Connect).ConfigureAwait(false);
        }
        else
        {
            // Destinations this request already tried (a retry goes elsewhere); the array is the connection's,
            // allocated on its first retry.
            int tried = 0;
            bool connectionLimited = false;
            RetryBudget? heldRetry = null;
            ForwardResult lastFailure = default;
            try
            {
                for (int attempt = 0; ; attempt++)
                {
                    var selection = DestinationSelector.Select(route, _tried, tried);
                    if (selection.Destination is null)
                    {
                        if (heldRetry is not null)
                        {
                            // A retry found nowhere else to go: the answer is the failure that made it retry (502,
                            // 504), not a 503 saying nothing was available.
                            keepAlive = await RespondToFailureAsync(lastFailure, keepAlive).ConfigureAwait(false);
                            break;
                        }

                        // Nothing else to go to after a destination at its connection limit: say which limit it was.
                        var shed = connectionLimited && selection.Shed == ShedReason.NoDestination ? ShedReason.DestinationConnections : selection.Shed;
                        keepAlive = await RespondShedAsync(shed, keepAlive).ConfigureAwait(false);
                        break;
                    }

                    var cluster = selection.Cluster!;
                    var destination = selection.Destination;
                    SelectCounters(route, cluster);
                    _servedBy = cluster;
                    _destination = destination;
                    Interlocked.Increment(ref destination.InFlight);
                    Interlocked.Increment(ref cluster.InFlight);
                    ForwardResult result;
                    try
                    {
                        var pool = UpstreamPool.For(destination);
                        var tls = cluster.Config.Tls is null ? null : _runtime.UpstreamTls.For(cluster.Config.Tls);
                        for (int connectAttempt = 0; ; connectAttempt++)
                        {
                            var upstream = pool.TryRent(tls);
                            bool reused = upstream is not null;
                            if (upstream is null)
                            {
                                var connected = await ConnectAsync(pool, cluster.Config, destination, tls).ConfigureAwait(false);
                                if (connected.Connection is null)
                                {
                                    result = new ForwardResult(connected.Outcome, Responded: false, keepAlive, BodyStarted: false);
                                    break;
                                }

                                upstream = connected.Connection;
                            }

                            Volatile.Write(ref _upstream, upstream);

                            // Request head up (with a small body that is already here), then stream any rest of the body.
                            bool tunnel = _request.HasUpgrade && (_request.Connection & ConnectionOptions.Upgrade) != 0;
                            HeadWriter.WriteRequest(upstream.Output, _request, _clientAddress, _https, tunnel);
                            bool bodySent = _request.HasBody && TryWriteBufferedBody(upstream.Output);
                            var upstreamFlush = await upstream.Output.FlushAsync().ConfigureAwait(false);
                            Task<CopyStatus>? bodyTask = null;
                            _responseTimeoutMs = route.ResponseTimeoutMs;
                            if (!upstreamFlush.IsCompleted && _request.HasBody && !bodySent)
                            {
                                _requestChunks.Reset();
                                bodyTask = CopyRequestBodyAsync(upstream);
                            }

                            // Response head, relaying interim 1xx responses.
                            Volatile.Write(ref _timedOut, 0);
                            Volatile.Write(ref _responseDeadline, Environment.TickCount64 + _responseTimeoutMs);
                            _upstreamStart = Stopwatch.GetTimestamp();
                            var upstreamInput = upstream.Input;
                            var response = upstream.Response;
                            var head = ResponseHeadStatus.Ok;
                            bool sawBytes = false;
                            while (true)
                            {
                                ReadResult read;
                                try
                                {
                                    read = await upstreamInput.ReadAsync().ConfigureAwait(false);
                                }
                                catch (IOException)
                                {
                                    head = sawBytes ? ResponseHeadStatus.Failed : ResponseHeadStatus.ClosedBeforeResponse;
                                    break;
                                }

                                var buffer = read.Buffer;
                                if (read.IsCanceled)
                                {
                                    upstreamInput.AdvanceTo(buffer.Start, buffer.End);
                                    head = ResponseHeadStatus.Failed;
                                    break;
                                }

                                sawBytes |= !buffer.IsEmpty;
                                var reader = new SequenceReader<byte>(buffer);
                                bool parsedResponse;
                                try
                                {
                                    parsedResponse = Http1Parser.TryParseResponseHead(ref reader, response, limits);
                                }
                                catch (Http1Exception)
                                {
                                    upstreamInput.AdvanceTo(buffer.End);
                                    head = ResponseHeadStatus.Invalid;
                                    break;
                                }

                                if (!parsedResponse)
                                {
                                    upstreamInput.AdvanceTo(buffer.Start, buffer.End);
                                    if (read.IsCompleted)
                                    {
                                        head = sawBytes ? ResponseHeadStatus.Failed : ResponseHeadStatus.ClosedBeforeResponse;
                                        break;
                                    }

                                    continue;
                                }

                                upstreamInput.AdvanceTo(reader.Position);
                                if (response.StatusCode == 101 && !tunnel)
                                {
                                    // A switch to a protocol the client never asked for (RFC 9110 §15.2.2).
                                    head = ResponseHeadStatus.Invalid;
                                    break;
                                }

                                if (response.TransferCoded && _request.Version == HttpVersion.Http10 && !HasNoBody(response.StatusCode))
                                {
                                    // A body under codings besides chunked (gzip, chunked) for a client that cannot read
                                    // transfer codings (RFC 9112 §6.1): stripping the chunks would hand it coded bytes as
                                    // the content, with nothing saying so. Only an upstream that ignores our HTTP/1.0 does this.
                                    head = ResponseHeadStatus.Invalid;
                                    break;
                                }

                                if (response.StatusCode is >= 100 and < 200 && response.StatusCode != 101)
                                {
                                    // Interim responses (100 Continue, 103 Early Hints) go to HTTP/1.1 clients as they come.
                                    if (_request.Version == HttpVersion.Http11)
                                    {
                                        HeadWriter.WriteResponse(_client.Output, response, closeClient: false, clientHttp10: false, tunnel: false, noFraming: true);
                                        await _client.Output.FlushAsync().ConfigureAwait(false);
                                    }

                                    response.Reset();
                                    continue;
                                }

                                break;
                            }

                            Volatile.Write(ref _responseDeadline, long.MaxValue);
                            _upstreamTicks = Stopwatch.GetTimestamp() - _upstreamStart;
                            if (head != ResponseHeadStatus.Ok)
                            {
                                // Our request went out before the close was seen: the upstream may have taken it
                                // and died acting on it, so only a request safe to repeat is sent again.
                                bool canRetry = reused && connectAttempt == 0 && !bodySent && IsIdempotent();
                                result = await FailedExchangeAsync(upstream, head, bodyTask, canRetry, keepAlive).ConfigureAwait(false);
                                if (result.Outcome == UpstreamOutcome.StalePooledConnection)
                                {
                                    // A pooled connection the upstream had closed while idle: nothing was sent or received.
                                    continue;
                                }

                                break;
                            }

                            int code = response.StatusCode;
                            _status = code;
                            var success = code >= 500 ? UpstreamOutcome.ServerError : UpstreamOutcome.Success;
                            if (code == 101 && tunnel)
                            {
                                await TunnelAsync(upstream, route).ConfigureAwait(false);
                                result = new ForwardResult(success, Responded: true, KeepAlive: false, BodyStarted: false);
                                break;
                            }

                            // Response head down, then the body by its framing.
                            bool noBody = HasNoBody(code);
                            bool closeDelimited = !noBody && !response.Chunked && response.ContentLength < 0;

                            // Chunked to our HTTP/1.0 request anyway: the client cannot read chunked (RFC 9112 §6.1),
                            // so it gets the data alone, ended by our close.
                            bool dechunk = _request.Version == HttpVersion.Http10 && response.Chunked && !noBody;

                            // An answer that comes before the whole request body went up (413, 401, a final status
                            // to Expect: 100-continue) ends the client connection: the rest of the body cannot be
                            // skipped without reading it. Say so in the head, as Envoy does.
                            bool closeClient = !keepAlive || closeDelimited || dechunk || code == 101 || _runtime.ShuttingDown
                                || (bodyTask is not null && !(bodyTask.IsCompletedSuccessfully && bodyTask.Result == CopyStatus.Done));
                            // No Transfer-Encoding for a 1.0 client even without a body (a HEAD): RFC 9112 §6.1. A 304
                            // keeps its framing fields (they describe the selected representation, RFC 9110 §8.6).
                            HeadWriter.WriteResponse(_client.Output, response, closeClient, _request.Version == HttpVersion.Http10, tunnel: false,
                                noFraming: (_request.Version == HttpVersion.Http10 && response.Chunked) || code == 204);
                            var copy = CopyStatus.Done;
                            if (closeDelimited)
                            {
                                copy = await CopyUntilCloseAsync(upstream.Connection, _client.Output, route).ConfigureAwait(false);
                            }
                            else if (dechunk)
                            {
                                copy = await CopyDechunkedAsync(upstreamInput, route).ConfigureAwait(false);
                            }
                            else if (!noBody && (response.Chunked || response.ContentLength > 0))
                            {
                                bool chunked = response.Chunked;
                                long remaining = response.ContentLength;
                                if (chunked)
                                {
                                    _responseChunks.Reset();
                                }

                                Touch(route);
                                while (true)
                                {
                                    ReadResult read;
                                    try
                                    {
                                        read = await upstreamInput.ReadAsync().ConfigureAwait(false);
                                    }
                                    catch (IOException)
                                    {
                                        copy = CopyStatus.SourceFailed;
                                        break;
                                    }

                                    var buffer = read.Buffer;
                                    if (read.IsCanceled)
                                    {
                                        upstreamInput.AdvanceTo(buffer.Start);
                                        copy = CopyStatus.SourceFailed;
                                        break;
                                    }

                                    long take;
                                    bool done;
                                    if (chunked)
                                    {
                                        try
                                        {
                                            done = _responseChunks.Advance(buffer, out take);
                                        }
                                        catch (Http1Exception)
                                        {
                                            upstreamInput.AdvanceTo(buffer.End);
                                            copy = CopyStatus.InvalidFraming;
                                            break;
                                        }
                                    }
                                    else
                                    {
                                        take = Math.Min(buffer.Length, remaining);
                                        remaining -= take;
                                        done = remaining == 0;
                                    }

                                    var body = buffer.Slice(0, take);
                                    bool delivered = true;
                                    if (take >= DirectSendMin && _client.Output is SocketWriter direct)
                                    {
                                        // A large chunk goes to the client socket from the upstream's buffer, uncopied.
                                        delivered = await direct.SendAsync(body).ConfigureAwait(false);
                                    }
                                    else
                                    {
                                        Write(_client.Output, body);
                                    }

                                    _responseBytes += take;

                                    // At the body's end, bytes past it stay unexamined (as for pipelined requests).
                                    upstreamInput.AdvanceTo(body.End, done ? body.End : buffer.End);
                                    Touch(route);
                                    if (!delivered)
                                    {
                                        copy = CopyStatus.DestinationClosed;
                                        break;
                                    }

                                    if (done)
                                    {
                                        break;
                                    }

                                    if (read.IsCompleted)
                                    {
                                        copy = CopyStatus.SourceEnded;
                                        break;
                                    }

                                    if (take > 0 && !await FlushAsync(_client.Output).ConfigureAwait(false))
                                    {
                                        copy = CopyStatus.DestinationClosed;
                                        break;
                                    }
                                }
                            }

                            Volatile.Write(ref _idleDeadline, long.MaxValue);
                            bool clientOpen = await FlushAsync(_client.Output).ConfigureAwait(false);
                            if (copy != CopyStatus.Done || !clientOpen)
                            {
                                result = await StreamBrokenAsync(upstream, bodyTask, copy).ConfigureAwait(false);
                                break;
                            }

                            if (bodyTask is not null && !await RequestBodyFinishedAsync(upstream, bodyTask).ConfigureAwait(false))
                            {
                                result = new ForwardResult(success, Responded: true, KeepAlive: false, BodyStarted: true);
                                break;
                            }

                            Volatile.Write(ref _upstream, null);
                            if (response.KeepAlive && !closeDelimited && code != 101)
                            {
                                upstream.Pool.Return(upstream);
                            }
                            else
                            {
                                upstream.CloseInBackground();
                            }

                            result = new ForwardResult(success, Responded: true, KeepAlive: !closeClient, BodyStarted: _request.HasBody);
                            break;
                        }
                    }
                    finally
                    {
                        Interlocked.Decrement(ref cluster.InFlight);
                        Interlocked.Decrement(ref destination.InFlight);
                        cluster.Limit.Exit();
                    }

                    _outcome = result.Outcome;
                    DestinationSelector.Record(cluster, destination, result.Outcome, selection.Permit);
                    if (Observability.RouterMetrics.FailureLabel(result.Outcome) is not null)
                    {
                        Interlocked.Increment(ref _runtime.Metrics.UpstreamFailures(cluster.Id)[(int)result.Outcome]);
                    }

                    if (result.Outcome == UpstreamOutcome.PoolExhausted && tried < MaxTriedDestinations)
                    {
                        // The destination is at its connection limit: nothing was sent, so this is not an attempt
                        // (no retry permit, not counted in maxAttempts). Another destination, or the fallback, serves.
                        tried = PassOver(destination, tried);
                        connectionLimited = true;
                        attempt--;
                        continue;
                    }

                    // One retry permit covers every further attempt of the request (the budget bounds requests
                    // retrying, maxAttempts bounds each one's attempts).
                    if (!result.Responded && IsRetryable(result.Outcome) && attempt + 1 < (cluster.Config.Retry?.MaxAttempts ?? 1) && tried < MaxTriedDestinations
                        && (heldRetry is not null || (cluster.Retries is { } budget && budget.TryAcquireRetry(Volatile.Read(ref cluster.InFlight)))))
                    {
                        // Nothing reached the client and the upstream cannot have acted on the request: try another destination.
                        heldRetry ??= cluster.Retries;
                        lastFailure = result;
                        tried = PassOver(destination, tried);
                        _runtime.CountRetry();
                        continue;
                    }

                    keepAlive = result.Responded
                        ? result.KeepAlive
                        : await RespondToFailureAsync(result, keepAlive).ConfigureAwait(false);
                    break;
                }
            }
            finally
            {
                if (tried != 0)
                {
                    Array.Clear(_tried!, 0, tried);
                }

                heldRetry?.ReleaseRetry();
                route.Limit.Exit();
                global!.Exit();
            }
        }

        RecordRequest();
        _request.Release();
        return keepAlive;
    }

    /// <summary>
    /// Admission, outermost first: config present, global limit, a matching route, the route's limit. Every gate is
    /// a counter (no queue anywhere), so over a limit is an immediate 503. On success both limits are held.
    /// </summary>
    private Admission Admit(out CompiledRoute? route, out ConcurrencyLimit? global)
    {
        route = null;
        global = null;

        // Body size limit: a declared length over it is refused before any upstream is contacted (a chunked body is
        // checked while it streams). The unread body can't be skipped, so the answer closes the connection.
        if (_request.ContentLength > _runtime.Limits.MaxRequestBodyBytes)
        {
            return new Admission(413, false, default);
        }

        var snapshot = _runtime.Table.Current;
        if (snapshot is null)
        {
            return new Admission(503, false, default);
        }

        if (_request.Method == HttpMethod.Connect)
        {
            return new Admission(501, false, default);
        }

        // Like nginx (and Apache's TraceEnable off): TRACE echoes the request as the upstream got it, so it would show
        // the client what the router and any proxy in between added. No browser can send it; nothing needs it.
        if (_request.Method == HttpMethod.Trace)
        {
            return new Admission(405, false, default);
        }

        var limit = _runtime.GlobalLimit;
        if (!limit.TryEnter())
        {
            return new Admission(503, true, ShedReason.Global);
        }

        var path = _request.Path.IsEmpty ? _request[_request.Target] : _request[_request.Path];
        if (!snapshot.TryMatch(_request[_request.Host], path, _request[_request.MethodToken], out var matched))
        {
            limit.Exit();
            return new Admission(404, false, default);
        }

        _routeId = matched.Id;
        if (matched.Metrics is Observability.RequestCounters[] slots)
        {
            _counters = slots[0];
        }

        if (!matched.Limit.TryEnter())
        {
            limit.Exit();
            return new Admission(503, true, ShedReason.Route);
        }

        route = matched;
        global = limit;
        return new Admission(0, false, default);
    }

    /// <summary>
    /// A small Content-Length body that has fully arrived goes upstream with the head, in the same send, with no
    /// copy task. Not with Expect: 100-continue (the client waits for the upstream's go-ahead).
    /// </summary>
    private bool TryWriteBufferedBody(PipeWriter upstreamOutput)
    {
        if (_request.Chunked || _request.ContentLength <= 0 || _request.ExpectContinue || !_client.Input.TryRead(out var read))
        {
            return false;
        }

        var buffer = read.Buffer;
        if (buffer.Length < _request.ContentLength)
        {
            _client.Input.AdvanceTo(buffer.Start);
            return false;
        }

        var body = buffer.Slice(0, _request.ContentLength);
        Write(upstreamOutput, body);
        _client.Input.AdvanceTo(body.End);
        return true;
    }

    private async ValueTask<(UpstreamConnection? Connection, UpstreamOutcome Outcome)> ConnectAsync(
        UpstreamPool pool, Core.Configuration.ClusterConfig config, DestinationState destination, UpstreamTlsOptions? tls)
    {
        try
        {
            var connection = await pool.ConnectAsync(config.ConnectTimeoutMs, config.MaxConnectionsPerDestination ?? 0, tls).ConfigureAwait(false);
            return (connection, UpstreamOutcome.Success);
        }
        catch (UpstreamConnectException ex)
        {
            LogConnectFailed(_runtime.Logger, destination.Address, ex.Error);
            var outcome = ex.Error switch
            {
                UpstreamConnectError.Timeout => UpstreamOutcome.ConnectTimeout,
                UpstreamConnectError.PoolExhausted => UpstreamOutcome.PoolExhausted,
                UpstreamConnectError.LocalResources => UpstreamOutcome.LocalResources,
                _ => UpstreamOutcome.ConnectFailed,
            };
            return (null, outcome);
        }
    }

    /// <summary>A response to this request that never has a body, whatever its framing says (RFC 9110 §6.4.1).</summary>
    private bool HasNoBody(int code) => _request.Method == HttpMethod.Head || code == 204 || code == 304 || code == 101;

    /// <summary>No usable response head: closes the upstream connection and says why (the caller answers the client).</summary>
    private async ValueTask<ForwardResult> FailedExchangeAsync(UpstreamConnection upstream, ResponseHeadStatus head, Task<CopyStatus>? bodyTask, bool canRetry, bool keepAlive)
    {
        var bodyStatus = CopyStatus.Done;
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
            _ => head == ResponseHeadStatus.ClosedBeforeResponse ? UpstreamOutcome.NoResponse : UpstreamOutcome.BadResponse,
        };
        LogUpstreamFailed(_runtime.Logger, upstream.Destination.Address, head, outcome);
        return new ForwardResult(outcome, Responded: false, KeepAlive: keepAlive, BodyStarted: bodyTask is not null || _request.HasBody);
    }

    /// <summary>The response started and then broke: the only honest signal left is to cut the client connection.</summary>
    private async ValueTask<ForwardResult> StreamBrokenAsync(UpstreamConnection upstream, Task<CopyStatus>? bodyTask, CopyStatus copy)
    {
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

    /// <summary>After the response: true when the request body also went through whole and the upstream connection is reusable.</summary>
    private async ValueTask<bool> RequestBodyFinishedAsync(UpstreamConnection upstream, Task<CopyStatus> bodyTask)
    {
        if (!bodyTask.IsCompleted)
        {
            // The upstream answered before taking the whole body; neither connection is in a known state. Our FIN
            // goes now and the upstream is cut, so the copy ends at its next send; what the client still sends is
            // then drained (the linger). Waking the copy's read instead would shut the receive side, and closing
            // with the client's bytes unread makes the kernel send a reset that can destroy the answer. A client
            // that sends nothing more (it waited for 100-continue) has its read woken after the linger time.
            await _client.Output.CompleteAsync().ConfigureAwait(false);
            upstream.Connection.Abort("response before request body");
            if (await Task.WhenAny(bodyTask, Task.Delay(LingerMs)).ConfigureAwait(false) != bodyTask)
            {
                _client.Input.CancelPendingRead();
            }

            await bodyTask.ConfigureAwait(false);
            await CloseUpstreamAsync(upstream).ConfigureAwait(false);
            await LingerAsync().ConfigureAwait(false);
            return false;
        }

        var status = await bodyTask.ConfigureAwait(false);
        if (status != CopyStatus.Done)
        {
            await CloseUpstreamAsync(upstream).ConfigureAwait(false);
            if (status == CopyStatus.DestinationClosed)
            {
                // The upstream answered and closed before taking the whole body: the rest is still on its way.
                await LingerAsync().ConfigureAwait(false);
            }

            return false;
        }

        return true;
    }

    /// <summary>Answers a failed attempt nobody answered yet: 502/503/504, 400 for a bad request body, nothing when the client left.</summary>
    private ValueTask<bool> RespondToFailureAsync(ForwardResult result, bool keepAlive) => result.Outcome switch
    {
        UpstreamOutcome.ClientGone or UpstreamOutcome.StreamBroken => ValueTask.FromResult(false),
        UpstreamOutcome.PoolExhausted => RespondShedAsync(ShedReason.DestinationConnections, keepAlive),
        UpstreamOutcome.BadRequestBody => RespondLocalAsync(400, keepAlive: false),
        UpstreamOutcome.RequestBodyTooLarge => RespondLocalAsync(413, keepAlive: false),
        UpstreamOutcome.RequestBodyTooSlow => RespondLocalAsync(408, keepAlive: false),
        UpstreamOutcome.ConnectTimeout or UpstreamOutcome.ResponseTimeout => RespondLocalAsync(504, keepAlive && !result.BodyStarted),

        // The router itself is out of descriptors: unavailable for now, not a bad gateway.
        UpstreamOutcome.LocalResources => RespondLocalAsync(503, keepAlive && !result.BodyStarted),
        _ => RespondLocalAsync(502, keepAlive && !result.BodyStarted),
    };

    /// <summary>
    /// Adds <paramref name="destination"/> to the ones this request will not be sent to again (the connection's array,
    /// allocated on its first use) and returns the new count.
    /// </summary>
    private int PassOver(DestinationState destination, int tried)
    {
        _tried ??= new DestinationState?[MaxTriedDestinations];
        _tried[tried] = destination;
        return tried + 1;
    }

    /// <summary>RFC 9110 §9.2.2: the methods a client may repeat automatically.</summary>
    private bool IsIdempotent() => _request.Method is HttpMethod.Get or HttpMethod.Head or HttpMethod.Options
        or HttpMethod.Put or HttpMethod.Delete or HttpMethod.Trace;

    private bool IsRetryable(UpstreamOutcome outcome) => IsIdempotent()
        && outcome switch
        {
            // The body is still unread in the client pipe: safe to send elsewhere.
            UpstreamOutcome.ConnectFailed or UpstreamOutcome.ConnectTimeout or UpstreamOutcome.PoolExhausted => true,
            UpstreamOutcome.NoResponse => !_request.HasBody,
            _ => false,
        };

    private readonly record struct Admission(int Status, bool Shed, ShedReason Reason);
}
