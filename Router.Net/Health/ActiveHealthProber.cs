using System.Net.Security;
using System.Security.Authentication;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Router.Core.Health;
using Router.Net.Transport;

namespace Router.Net.Health;

/// <summary>
/// Active health checks: one background loop per watched destination sends
/// <c>GET {path} HTTP/1.1</c> with <c>Connection: close</c> over a fresh socket, reads the status line and reports
/// whether the status is in the expected range to the destination's <see cref="HealthState"/>.
/// </summary>
/// <remarks>
/// Loops sleep with <see cref="Task.Delay(int, CancellationToken)"/>, never block a thread, and run independently of
/// the request path. The interval gets ±15% jitter and the first probe a small random delay, so destinations (and
/// routers sharing upstreams) are not probed in lockstep. A fresh connection per probe tests what a new request
/// would meet: the listen queue, accept, and the application.
/// </remarks>
internal sealed partial class ActiveHealthProber : IAsyncDisposable
{
    /// <summary>Jitter applied to every interval: ±15%.</summary>
    internal const double JitterFraction = 0.15;

    /// <summary>Upper bound on the random delay before a watch's first probe.</summary>
    internal const int MaxInitialDelayMs = 250;

    // A status line is all we read; the buffer only has to hold "HTTP/1.1 200".
    private const int ReceiveBufferSize = 256;

    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly Dictionary<object, Watcher> _watchers = [];
    private bool _disposed;

    /// <summary>Creates a prober with no destinations watched.</summary>
    public ActiveHealthProber(ILogger logger) => _logger = logger;

    /// <summary>Destinations being watched.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _watchers.Count;
            }
        }
    }

    /// <summary>
    /// Starts probing a destination, identified by <paramref name="key"/>. Watching a key again with identical
    /// settings keeps the running loop (so a config reload does not reset the schedule); different settings
    /// replace it. Health transitions go to <paramref name="state"/> and the log.
    /// </summary>
    public void Watch(
        object key,
        EndPoint endpoint,
        string hostHeader,
        string path,
        int intervalMs,
        int timeoutMs,
        int expectedMin,
        int expectedMax,
        HealthState state,
        Tls.UpstreamTlsOptions? tls = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentException.ThrowIfNullOrEmpty(hostHeader);
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfLessThan(intervalMs, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(timeoutMs, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(expectedMin, expectedMax);
        if (path[0] != '/' || ContainsControl(path) || ContainsControl(hostHeader))
        {
            throw new ArgumentException("The probe path must start with '/' and neither it nor the host may contain control characters or spaces.");
        }

        var target = new ProbeTarget(endpoint, hostHeader, path, intervalMs, timeoutMs, expectedMin, expectedMax, state, tls);
        Watcher? replaced = null;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_watchers.TryGetValue(key, out Watcher? existing))
            {
                if (existing.Target == target)
                {
                    return;
                }

                replaced = existing;
            }

            var watcher = new Watcher(key, target);
            _watchers[key] = watcher;
            watcher.Loop = RunAsync(watcher);
        }

        replaced?.Cancellation.Cancel();
    }

    /// <summary>Stops probing the destination with <paramref name="key"/>; unknown keys are ignored.</summary>
    public void Unwatch(object key)
    {
        Watcher? watcher;
        lock (_gate)
        {
            if (!_watchers.Remove(key, out watcher))
            {
                return;
            }
        }

        watcher.Cancellation.Cancel();
    }

    /// <summary>Stops every loop and waits for them to finish.</summary>
    public async ValueTask DisposeAsync()
    {
        Watcher[] watchers;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            watchers = [.. _watchers.Values];
            _watchers.Clear();
        }

        var loops = new Task[watchers.Length];
        for (int i = 0; i < watchers.Length; i++)
        {
            watchers[i].Cancellation.Cancel();
            loops[i] = watchers[i].Loop;
        }

        await Task.WhenAll(loops).ConfigureAwait(false);
    }

    /// <summary>One probe: connect, send, read the status line. Never throws except on <paramref name="cancellationToken"/>.</summary>
    internal static async Task<ProbeResult> ProbeOnceAsync(
        EndPoint endpoint, ReadOnlyMemory<byte> request, Memory<byte> buffer, int timeoutMs, int expectedMin, int expectedMax, CancellationToken cancellationToken,
        Tls.UpstreamTlsOptions? tls = null)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(timeoutMs);
        Socket socket;
        try
        {
            socket = endpoint is IPEndPoint ip
                ? new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
                : new Socket(SocketType.Stream, ProtocolType.Tcp);
        }
        catch (SocketException e)
        {
            // Out of descriptors (EMFILE): no probe this time. Thrown, it ended the destination's probe loop for good.
            return new ProbeResult(ProbeOutcome.ConnectFailed, 0, e.SocketErrorCode);
        }

        using var owned = socket;
        socket.NoDelay = true;
        try
        {
            try
            {
                await socket.ConnectAsync(endpoint, timeout.Token).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                return new ProbeResult(ProbeOutcome.ConnectFailed, 0, e.SocketErrorCode);
            }

            // A cluster with upstream TLS is probed over TLS, with the same trust and client certificate as its traffic.
            await using Stream stream = tls is null ? new NetworkStream(socket, ownsSocket: false) : new SslStream(new NetworkStream(socket, ownsSocket: false));
            if (stream is SslStream ssl)
            {
                try
                {
                    await ssl.AuthenticateAsClientAsync(tls!.CreateClientOptions(endpoint), timeout.Token).ConfigureAwait(false);
                }
                catch (AuthenticationException)
                {
                    return new ProbeResult(ProbeOutcome.ConnectionFailed, 0, SocketError.SocketError);
                }
            }

            await stream.WriteAsync(request, timeout.Token).ConfigureAwait(false);
            int filled = 0;
            while (true)
            {
                int read = await stream.ReadAsync(buffer[filled..], timeout.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    return new ProbeResult(ProbeOutcome.ClosedEarly, 0, SocketError.Success);
                }

                filled += read;
                switch (TryParseStatus(buffer.Span[..filled], out int status))
                {
                    case StatusParse.Done:
                        bool ok = status >= expectedMin && status <= expectedMax;
                        return new ProbeResult(ok ? ProbeOutcome.Healthy : ProbeOutcome.UnexpectedStatus, status, SocketError.Success);
                    case StatusParse.Malformed:
                        return new ProbeResult(ProbeOutcome.MalformedResponse, 0, SocketError.Success);
                }

                if (filled == buffer.Length)
                {
                    return new ProbeResult(ProbeOutcome.MalformedResponse, 0, SocketError.Success);
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new ProbeResult(ProbeOutcome.TimedOut, 0, SocketError.TimedOut);
        }
        catch (SocketException e)
        {
            return new ProbeResult(ProbeOutcome.ConnectionFailed, 0, e.SocketErrorCode);
        }
        catch (IOException)
        {
            return new ProbeResult(ProbeOutcome.ConnectionFailed, 0, SocketError.ConnectionReset);
        }
    }

    /// <summary>Parses <c>HTTP/1.x SSS</c> from the start of a response.</summary>
    internal static StatusParse TryParseStatus(ReadOnlySpan<byte> data, out int status)
    {
        status = 0;
        ReadOnlySpan<byte> prefix = "HTTP/1."u8;
        int compare = Math.Min(data.Length, prefix.Length);
        if (!data[..compare].SequenceEqual(prefix[..compare]))
        {
            return StatusParse.Malformed;
        }

        // "HTTP/1.x SSS" is 12 bytes.
        if (data.Length < 12)
        {
            return StatusParse.NeedMore;
        }

        if (!char.IsAsciiDigit((char)data[7]) || data[8] != (byte)' ')
        {
            return StatusParse.Malformed;
        }

        int code = 0;
        for (int i = 9; i < 12; i++)
        {
            if (!char.IsAsciiDigit((char)data[i]))
            {
                return StatusParse.Malformed;
            }

            code = (code * 10) + (data[i] - '0');
        }

        status = code;
        return StatusParse.Done;
    }

    /// <summary>The interval with ±<see cref="JitterFraction"/> jitter.</summary>
    internal static int Jitter(int intervalMs)
        => Math.Max(1, (int)(intervalMs * (1 - JitterFraction + (2 * JitterFraction * Random.Shared.NextDouble()))));

    private static bool ContainsControl(string value)
    {
        foreach (char c in value)
        {
            if (c <= ' ' || c == '\u007f')
            {
                return true;
            }
        }

        return false;
    }

    private async Task RunAsync(Watcher watcher)
    {
        // Let Watch return before the first await's continuation runs anything.
        await Task.Yield();
        ProbeTarget target = watcher.Target;
        CancellationToken cancellationToken = watcher.Cancellation.Token;
        byte[] request = Encoding.ASCII.GetBytes(
            $"GET {target.Path} HTTP/1.1\r\nHost: {target.HostHeader}\r\nUser-Agent: router-health\r\nConnection: close\r\n\r\n");
        byte[] buffer = new byte[ReceiveBufferSize];
        string destination = watcher.Key.ToString() ?? target.EndPoint.ToString() ?? "";
        try
        {
            await Task.Delay(Random.Shared.Next(Math.Min(MaxInitialDelayMs, target.IntervalMs) + 1), cancellationToken).ConfigureAwait(false);
            while (true)
            {
                ProbeResult result = await ProbeOnceAsync(
                    target.EndPoint, request, buffer, target.TimeoutMs, target.ExpectedMin, target.ExpectedMax, cancellationToken, target.Tls).ConfigureAwait(false);

                // A probe cut short by Unwatch says nothing about the destination, nor one that found this process
                // out of descriptors or socket buffers.
                cancellationToken.ThrowIfCancellationRequested();
                if (!LocalShortage.Is(result.SocketError))
                {
                    Report(destination, target, result);
                }

                await Task.Delay(Jitter(target.IntervalMs), cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            Log.LoopFailed(_logger, e, destination);
        }
    }

    private void Report(string destination, ProbeTarget target, ProbeResult result)
    {
        HealthState state = target.State;
        bool wasHealthy = state.IsHealthy;
        state.OnProbe(result.IsHealthy);
        if (!result.IsHealthy)
        {
            Log.ProbeFailed(_logger, destination, target.EndPoint, result.Outcome, result.StatusCode, result.SocketError);
        }

        bool isHealthy = state.IsHealthy;
        if (wasHealthy && !isHealthy)
        {
            Log.MarkedUnhealthy(_logger, destination, target.EndPoint, state.ConsecutiveFailures, result.Outcome, result.StatusCode);
        }
        else if (!wasHealthy && isHealthy)
        {
            Log.MarkedHealthy(_logger, destination, target.EndPoint, state.ConsecutiveSuccesses);
        }
    }

    private sealed record ProbeTarget(
        EndPoint EndPoint, string HostHeader, string Path, int IntervalMs, int TimeoutMs, int ExpectedMin, int ExpectedMax, HealthState State,
        Tls.UpstreamTlsOptions? Tls);

    private sealed class Watcher(object key, ProbeTarget target)
    {
        public object Key { get; } = key;

        public ProbeTarget Target { get; } = target;

        // Never disposed: it has no timer, and Unwatch or DisposeAsync may cancel it after the loop has ended.
        public CancellationTokenSource Cancellation { get; } = new();

        public Task Loop { get; set; } = Task.CompletedTask;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4101, Level = LogLevel.Warning,
            Message = "Destination {Destination} ({EndPoint}) is unhealthy after {Failures} failed health probes; last: {Outcome} (status {Status})")]
        public static partial void MarkedUnhealthy(ILogger logger, string destination, EndPoint endPoint, int failures, ProbeOutcome outcome, int status);

        [LoggerMessage(EventId = 4102, Level = LogLevel.Information,
            Message = "Destination {Destination} ({EndPoint}) is healthy again after {Successes} successful health probes")]
        public static partial void MarkedHealthy(ILogger logger, string destination, EndPoint endPoint, int successes);

        [LoggerMessage(EventId = 4103, Level = LogLevel.Debug,
            Message = "Health probe of {Destination} ({EndPoint}) failed: {Outcome} (status {Status}, socket {SocketError})")]
        public static partial void ProbeFailed(ILogger logger, string destination, EndPoint endPoint, ProbeOutcome outcome, int status, SocketError socketError);

        [LoggerMessage(EventId = 4104, Level = LogLevel.Error, Message = "Health probe loop for {Destination} stopped unexpectedly")]
        public static partial void LoopFailed(ILogger logger, Exception exception, string destination);
    }
}

/// <summary>What one health probe found.</summary>
internal enum ProbeOutcome
{
    /// <summary>A status in the expected range.</summary>
    Healthy,

    /// <summary>A status outside the expected range.</summary>
    UnexpectedStatus,

    /// <summary>The connection was refused, unreachable or reset during connect.</summary>
    ConnectFailed,

    /// <summary>The connection failed after it was established.</summary>
    ConnectionFailed,

    /// <summary>No status line within the timeout.</summary>
    TimedOut,

    /// <summary>The upstream closed before sending a status line.</summary>
    ClosedEarly,

    /// <summary>The response did not start with an HTTP/1.x status line.</summary>
    MalformedResponse,
}

/// <summary>Result of parsing a status line.</summary>
internal enum StatusParse
{
    /// <summary>More bytes are needed.</summary>
    NeedMore,

    /// <summary>The status code was read.</summary>
    Done,

    /// <summary>Not an HTTP/1.x status line.</summary>
    Malformed,
}

/// <summary>One probe's outcome, status code (0 when none) and socket error.</summary>
internal readonly record struct ProbeResult(ProbeOutcome Outcome, int StatusCode, SocketError SocketError)
{
    /// <summary>True when the destination answered with an expected status.</summary>
    public bool IsHealthy => Outcome == ProbeOutcome.Healthy;
}
