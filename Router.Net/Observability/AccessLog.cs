using System.Buffers;
using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Router.Net.Observability;

/// <summary>One request as the access log records it. Strings are references the router already holds (route, cluster,
/// destination ids); request bytes are copied into the slot's own buffer, so recording allocates nothing.</summary>
internal sealed class AccessLogEntry
{
    // Method, host and path share one buffer; 1 KiB keeps a slot small, longer values are cut (with "...").
    public const int MaxRequestBytes = 1024;

    public readonly byte[] Request = new byte[MaxRequestBytes];
    public long Sequence;
    public long TimeTicks;
    public byte[] Client = [];
    public int MethodLength;
    public int HostLength;
    public int PathLength;
    public string? Route;
    public string? Cluster;
    public string? Destination;
    public int Status;
    public long Bytes;
    public long DurationTicks;
    public long UpstreamTicks;
    public string Outcome = "";
}

/// <summary>
/// The optional access log: one JSON line per request, written off the request path. Requests claim a slot in a
/// bounded ring (Vyukov's bounded queue: one CAS); a background loop formats and writes. When the ring is full the
/// entry is dropped and counted, so a slow disk never slows proxying.
/// </summary>
internal sealed partial class AccessLog : IAsyncDisposable
{
    private readonly AccessLogEntry[] _ring;
    private readonly int _mask;
    private readonly string? _path;
    private readonly ILogger _logger;
    private Stream _stream;
    private int _reopen;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _writer;
    private long _tail;
    private long _head;
    private long _dropped;
    private long _written;

    public AccessLog(Stream stream, ILogger logger, int capacity = 8192, string? path = null)
    {
        if (capacity <= 0 || (capacity & (capacity - 1)) != 0)
        {
            throw new ArgumentException("capacity must be a power of two", nameof(capacity));
        }

        _stream = stream;
        _path = path;
        _logger = logger;
        _ring = new AccessLogEntry[capacity];
        for (int i = 0; i < capacity; i++)
        {
            _ring[i] = new AccessLogEntry { Sequence = i };
        }

        _mask = capacity - 1;
        _writer = Task.Run(WriteLoopAsync);
    }

    public long Dropped => Interlocked.Read(ref _dropped);

    public long Written => Interlocked.Read(ref _written);

    /// <summary>Opens the log: "-" is standard output, anything else a file appended to (and reopened on request).</summary>
    public static AccessLog Open(string path, ILogger logger) =>
        path == "-" ? new(Console.OpenStandardOutput(), logger) : new(OpenFile(path), logger, path: path);

    /// <summary>
    /// Asks the writer to reopen the file by its path before its next write (SIGHUP): after logrotate renamed it,
    /// lines go to the new file instead of the rotated one. Standard output is left as it is.
    /// </summary>
    public void Reopen() => Volatile.Write(ref _reopen, 1);

    private static FileStream OpenFile(string path) => new(path, FileMode.Append, FileAccess.Write, FileShare.Read, 64 * 1024);

    /// <summary>Claims a slot, or returns null when the ring is full (the entry is dropped). Fill it, then <see cref="Publish"/>.</summary>
    public AccessLogEntry? TryClaim()
    {
        while (true)
        {
            long position = Volatile.Read(ref _tail);
            var entry = _ring[position & _mask];
            long difference = Volatile.Read(ref entry.Sequence) - position;
            if (difference == 0)
            {
                if (Interlocked.CompareExchange(ref _tail, position + 1, position) == position)
                {
                    return entry;
                }
            }
            else if (difference < 0)
            {
                Interlocked.Increment(ref _dropped);
                return null;
            }
        }
    }

    /// <summary>Hands a filled slot to the writer.</summary>
    public static void Publish(AccessLogEntry entry, long position) => Volatile.Write(ref entry.Sequence, position + 1);

    /// <summary>Records one request (the common case: claim, fill, publish).</summary>
    public void Record(
        byte[] client, ReadOnlySpan<byte> method, ReadOnlySpan<byte> host, ReadOnlySpan<byte> path,
        string? route, string? cluster, string? destination, int status, long bytes, long durationTicks, long upstreamTicks, string outcome)
    {
        var entry = TryClaim();
        if (entry is null)
        {
            return;
        }

        long position = Volatile.Read(ref entry.Sequence);
        entry.TimeTicks = DateTime.UtcNow.Ticks;
        entry.Client = client;
        var buffer = entry.Request.AsSpan();
        entry.MethodLength = Copy(method, buffer);
        entry.HostLength = Copy(host, buffer[entry.MethodLength..]);
        entry.PathLength = Copy(path, buffer[(entry.MethodLength + entry.HostLength)..]);
        entry.Route = route;
        entry.Cluster = cluster;
        entry.Destination = destination;
        entry.Status = status;
        entry.Bytes = bytes;
        entry.DurationTicks = durationTicks;
        entry.UpstreamTicks = upstreamTicks;
        entry.Outcome = outcome;
        Publish(entry, position);
    }

    private static int Copy(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        int n = Math.Min(source.Length, destination.Length);
        source[..n].CopyTo(destination);
        return n;
    }

    private async Task WriteLoopAsync()
    {
        var output = new ArrayBufferWriter<byte>(64 * 1024);
        using var json = new Utf8JsonWriter(output, new JsonWriterOptions { SkipValidation = true });
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
        bool running = true;
        while (running)
        {
            try
            {
                running = await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                running = false;
            }

            if (Interlocked.Exchange(ref _reopen, 0) != 0)
            {
                await ReopenAsync(output).ConfigureAwait(false);
            }

            // Drain what is published, then write it in one go.
            while (true)
            {
                var entry = _ring[_head & _mask];
                if (Volatile.Read(ref entry.Sequence) != _head + 1)
                {
                    break;
                }

                Format(json, entry);
                json.Flush();
                output.Write("\n"u8);
                json.Reset();
                Volatile.Write(ref entry.Sequence, _head + _ring.Length);
                _head++;
                Interlocked.Increment(ref _written);
                if (output.WrittenCount > 48 * 1024)
                {
                    await FlushAsync(output).ConfigureAwait(false);
                }
            }

            await FlushAsync(output).ConfigureAwait(false);
        }
    }

    /// <summary>From the writer loop only (it alone touches the stream): what is buffered goes to the old file first.</summary>
    private async Task ReopenAsync(ArrayBufferWriter<byte> output)
    {
        if (_path is null)
        {
            return;
        }

        await FlushAsync(output).ConfigureAwait(false);
        try
        {
            var next = OpenFile(_path);
            await _stream.DisposeAsync().ConfigureAwait(false);
            _stream = next;
            LogReopened(_logger, _path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Keep writing where we were: losing the log is worse than writing to the rotated file.
            LogReopenFailed(_logger, _path, ex);
        }
    }

    private async Task FlushAsync(ArrayBufferWriter<byte> output)
    {
        if (output.WrittenCount == 0)
        {
            return;
        }

        try
        {
            await _stream.WriteAsync(output.WrittenMemory).ConfigureAwait(false);
            await _stream.FlushAsync().ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            LogWriteFailed(_logger, ex);
        }

        output.ResetWrittenCount();
    }

    private static void Format(Utf8JsonWriter json, AccessLogEntry entry)
    {
        var request = entry.Request.AsSpan();
        json.WriteStartObject();
        json.WriteString("time"u8, new DateTime(entry.TimeTicks, DateTimeKind.Utc));
        json.WriteString("client"u8, entry.Client);
        json.WriteString("method"u8, request[..entry.MethodLength]);
        json.WriteString("host"u8, request.Slice(entry.MethodLength, entry.HostLength));
        json.WriteString("path"u8, request.Slice(entry.MethodLength + entry.HostLength, entry.PathLength));
        json.WriteString("route"u8, entry.Route);
        json.WriteString("cluster"u8, entry.Cluster);
        json.WriteString("destination"u8, entry.Destination);
        json.WriteNumber("status"u8, entry.Status);
        json.WriteNumber("bytes"u8, entry.Bytes);
        json.WriteNumber("duration_ms"u8, Math.Round(entry.DurationTicks * 1000.0 / Stopwatch.Frequency, 3));
        json.WriteNumber("upstream_ms"u8, Math.Round(entry.UpstreamTicks * 1000.0 / Stopwatch.Frequency, 3));
        json.WriteString("outcome"u8, entry.Outcome);
        json.WriteEndObject();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _writer.ConfigureAwait(false);
        await _stream.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    [LoggerMessage(EventId = 500, Level = LogLevel.Warning, Message = "Access log write failed; entries are dropped until it recovers")]
    private static partial void LogWriteFailed(ILogger logger, Exception ex);

    [LoggerMessage(EventId = 501, Level = LogLevel.Information, Message = "Access log reopened: {Path}")]
    private static partial void LogReopened(ILogger logger, string path);

    [LoggerMessage(EventId = 502, Level = LogLevel.Warning, Message = "Access log {Path} could not be reopened; still writing to the file it had open")]
    private static partial void LogReopenFailed(ILogger logger, string path, Exception ex);
}
