using System.Buffers;
using System.Buffers.Text;
using System.IO.Pipelines;
using Router.Net.Http1;

namespace Router.Net.Forwarding;

/// <summary>
/// Writes rewritten heads straight into the destination pipe: one GetSpan sized for the worst case, one Advance.
/// Headers stay bytes from end to end.
/// </summary>
internal static class HeadWriter
{
    private static ReadOnlySpan<byte> Via => "Via: 1.1 router\r\n"u8;

    /// <summary>Writes the request head sent upstream: origin-form target, hop-by-hop removed, X-Forwarded-* and Via added.</summary>
    public static void WriteRequest(PipeWriter writer, HttpRequestHead request, ReadOnlySpan<byte> clientAddress, bool https, bool tunnel)
    {
        // Worst case: a field sent as "Name:value" is written "Name: value" (a byte more each), plus the lines we add.
        int size = request.Length + request.HeaderCount + clientAddress.Length + (2 * request.Host.Length) + 200;
        var span = writer.GetSpan(size);
        int n = 0;
        var buffer = request.Buffer;

        Append(span, ref n, request[request.MethodToken]);
        span[n++] = (byte)' ';
        if (request.Path.IsEmpty)
        {
            // CONNECT's authority-form keeps its target as it is.
            Append(span, ref n, request[request.Target]);
        }
        else
        {
            Append(span, ref n, request[request.Path]);
            Append(span, ref n, request[request.Query]);
        }

        // An HTTP/1.0 client cannot read chunked: asking as 1.0 keeps the upstream from sending it.
        Append(span, ref n, request.Version == HttpVersion.Http10 ? " HTTP/1.0\r\n"u8 : " HTTP/1.1\r\n"u8);

        bool hostWritten = false;
        bool xffWritten = false;
        bool framingWritten = false;
        bool otherHopByHop = (request.Connection & ConnectionOptions.Other) != 0;
        bool underscores = request.UnderscoreInNames;
        for (int i = 0; i < request.HeaderCount; i++)
        {
            var field = request.Headers[i];
            var name = buffer.AsSpan(field.Name.Start, field.Name.Length);
            var value = buffer.AsSpan(field.Value.Start, field.Value.Length);
            switch (HeaderNames.Classify(name))
            {
                case HeaderDisposition.Drop:
                case HeaderDisposition.ForwardingClaim:
                    continue;
                case HeaderDisposition.Upgrade:
                    // In a tunnel it goes up even though Connection names it (it always does): what else Connection
                    // names is still dropped below.
                    if (tunnel)
                    {
                        AppendField(span, ref n, name, value);
                    }

                    continue;
                case HeaderDisposition.Host:
                    // Absolute-form: the target's authority wins (the parser put it in request.Host).
                    if (hostWritten)
                    {
                        continue;
                    }

                    Append(span, ref n, "Host: "u8);
                    Append(span, ref n, request[request.Host]);
                    Append(span, ref n, "\r\n"u8);
                    hostWritten = true;
                    continue;
                case HeaderDisposition.ContentLength:
                case HeaderDisposition.TransferEncoding:
                    WriteFraming(span, ref n, ref framingWritten, request.ContentLength, buffer, request.Headers, request.HeaderCount);
                    continue;
                case HeaderDisposition.XForwardedFor:
                    if (!xffWritten)
                    {
                        WriteForwardedFor(span, ref n, clientAddress, buffer, request.Headers, i, request.HeaderCount);
                        xffWritten = true;
                    }

                    continue;
            }

            // Dropped like nginx (underscores_in_headers off): CGI, WSGI and PHP map '_' and '-' to the same variable,
            // so "X_Forwarded_For" could stand in for the X-Forwarded-For we write. None of the names above has one.
            if (underscores && name.Contains((byte)'_'))
            {
                continue;
            }

            if (otherHopByHop && HeaderNames.IsNamedByConnection(buffer, request.Headers, request.HeaderCount, name))
            {
                continue;
            }

            AppendField(span, ref n, name, value);
        }

        if (!hostWritten && !request.Host.IsEmpty)
        {
            Append(span, ref n, "Host: "u8);
            Append(span, ref n, request[request.Host]);
            Append(span, ref n, "\r\n"u8);
        }

        if (!xffWritten)
        {
            Append(span, ref n, "X-Forwarded-For: "u8);
            Append(span, ref n, clientAddress);
            Append(span, ref n, "\r\n"u8);
        }

        Append(span, ref n, https ? "X-Forwarded-Proto: https\r\n"u8 : "X-Forwarded-Proto: http\r\n"u8);
        if (!request.Host.IsEmpty)
        {
            Append(span, ref n, "X-Forwarded-Host: "u8);
            Append(span, ref n, request[request.Host]);
            Append(span, ref n, "\r\n"u8);
        }

        Append(span, ref n, Via);
        if (tunnel)
        {
            Append(span, ref n, "Connection: upgrade\r\n"u8);
        }
        else if (request.Version == HttpVersion.Http10)
        {
            Append(span, ref n, "Connection: keep-alive\r\n"u8);
        }

        Append(span, ref n, "\r\n"u8);
        writer.Advance(n);
    }

    /// <summary>
    /// Writes the response head sent to the client: hop-by-hop removed, our own Connection decision added. With
    /// <c>noFraming</c> the head carries no framing header: a chunked response to an HTTP/1.0 client (its body, if it
    /// has one, goes without its framing, ended by the close), and a 1xx or 204, which never have one (RFC 9110 §8.6,
    /// RFC 9112 §6.1: a client could wait for a body that never comes).
    /// </summary>
    public static void WriteResponse(PipeWriter writer, HttpResponseHead response, bool closeClient, bool clientHttp10, bool tunnel, bool noFraming = false)
    {
        // Worst case: a field sent as "Name:value" is written "Name: value" (a byte more each), plus our Date and
        // Connection lines.
        var span = writer.GetSpan(response.Length + response.HeaderCount + 96);
        int n = 0;
        var buffer = response.Buffer;

        // Status line: we speak HTTP/1.1 to the client whatever the upstream spoke; code and reason are copied.
        int lineEnd = buffer.AsSpan(0, response.Length).IndexOf((byte)'\r');
        Append(span, ref n, "HTTP/1.1"u8);
        Append(span, ref n, buffer.AsSpan(8, lineEnd - 8));
        Append(span, ref n, "\r\n"u8);

        bool otherHopByHop = (response.Connection & ConnectionOptions.Other) != 0;

        bool framingWritten = false;
        for (int i = 0; i < response.HeaderCount; i++)
        {
            var field = response.Headers[i];
            var name = buffer.AsSpan(field.Name.Start, field.Name.Length);
            switch (HeaderNames.Classify(name))
            {
                case HeaderDisposition.Drop:
                    continue;
                case HeaderDisposition.ContentLength:
                case HeaderDisposition.TransferEncoding:
                    // Tested here, once per response: starting framingWritten at noFraming instead cost the usual path
                    // ~10 % (RewriteResponseHead, bench-check).
                    if (!noFraming)
                    {
                        WriteFraming(span, ref n, ref framingWritten, response.ContentLength, buffer, response.Headers, response.HeaderCount);
                    }

                    continue;
                case HeaderDisposition.Upgrade:
                    // As in the request: the 101's Upgrade reaches the client whatever else its Connection names.
                    if (tunnel)
                    {
                        AppendField(span, ref n, name, buffer.AsSpan(field.Value.Start, field.Value.Length));
                    }

                    continue;
            }

            if (otherHopByHop && HeaderNames.IsNamedByConnection(buffer, response.Headers, response.HeaderCount, name))
            {
                continue;
            }

            AppendField(span, ref n, name, buffer.AsSpan(field.Value.Start, field.Value.Length));
        }

        if (!response.HasDate && response.StatusCode >= 200)
        {
            // RFC 9110 §6.6.1: a recipient with a clock that forwards a response without Date must add one.
            Append(span, ref n, "Date: "u8);
            Append(span, ref n, HttpDate.Current);
            Append(span, ref n, "\r\n"u8);
        }

        if (tunnel)
        {
            Append(span, ref n, "Connection: upgrade\r\n"u8);
        }
        else if (closeClient)
        {
            Append(span, ref n, "Connection: close\r\n"u8);
        }
        else if (clientHttp10)
        {
            Append(span, ref n, "Connection: keep-alive\r\n"u8);
        }

        Append(span, ref n, "\r\n"u8);
        writer.Advance(n);
    }

    /// <summary>Writes a response the router generates itself (errors, shed requests).</summary>
    public static void WriteLocal(PipeWriter writer, int status, bool close, ReadOnlySpan<byte> extraHeaders = default)
    {
        var reason = ReasonPhrase(status);
        var span = writer.GetSpan(160 + reason.Length * 2 + extraHeaders.Length);
        int n = 0;
        Append(span, ref n, "HTTP/1.1 "u8);
        Utf8Formatter.TryFormat(status, span[n..], out int written);
        n += written;
        span[n++] = (byte)' ';
        Append(span, ref n, reason);
        Append(span, ref n, "\r\nContent-Type: text/plain\r\nContent-Length: "u8);
        Utf8Formatter.TryFormat(reason.Length + 1, span[n..], out written);
        n += written;
        Append(span, ref n, "\r\n"u8);
        Append(span, ref n, extraHeaders);
        Append(span, ref n, close ? "Connection: close\r\n\r\n"u8 : "\r\n"u8);
        Append(span, ref n, reason);
        span[n++] = (byte)'\n';
        writer.Advance(n);
    }

    public static ReadOnlySpan<byte> ReasonPhrase(int status) => status switch
    {
        200 => "OK"u8,
        400 => "Bad Request"u8,
        401 => "Unauthorized"u8,
        405 => "Method Not Allowed"u8,
        404 => "Not Found"u8,
        408 => "Request Timeout"u8,
        411 => "Length Required"u8,
        413 => "Content Too Large"u8,
        414 => "URI Too Long"u8,
        417 => "Expectation Failed"u8,
        431 => "Request Header Fields Too Large"u8,
        500 => "Internal Server Error"u8,
        501 => "Not Implemented"u8,
        502 => "Bad Gateway"u8,
        503 => "Service Unavailable"u8,
        504 => "Gateway Timeout"u8,
        505 => "HTTP Version Not Supported"u8,
        _ => "Error"u8,
    };

    /// <summary>
    /// Writes the message's framing as exactly one header, where its first framing field was: <c>Content-Length: N</c>
    /// with the parsed value (so "5, 5" or a repeated line becomes one), or one <c>Transfer-Encoding</c> line joining
    /// every Transfer-Encoding line's codings in order. The parser already refused CL with TE and conflicting CLs;
    /// this keeps a next hop that reads lists or repeats differently from disagreeing with us about the body.
    /// Never longer than the lines it replaces, bar the one Content-Length line (the head buffer's slack covers it).
    /// </summary>
    private static void WriteFraming(Span<byte> span, ref int n, ref bool written, long contentLength, byte[] buffer, HeaderField[] headers, int count)
    {
        if (written)
        {
            return;
        }

        written = true;
        if (contentLength >= 0)
        {
            Append(span, ref n, "Content-Length: "u8);
            Utf8Formatter.TryFormat(contentLength, span[n..], out int digits);
            n += digits;
            Append(span, ref n, "\r\n"u8);
            return;
        }

        Append(span, ref n, "Transfer-Encoding: "u8);
        bool first = true;
        for (int i = 0; i < count; i++)
        {
            var field = headers[i];
            if (HeaderNames.Classify(buffer.AsSpan(field.Name.Start, field.Name.Length)) != HeaderDisposition.TransferEncoding)
            {
                continue;
            }

            if (!first)
            {
                Append(span, ref n, ", "u8);
            }

            Append(span, ref n, buffer.AsSpan(field.Value.Start, field.Value.Length));
            first = false;
        }

        Append(span, ref n, "\r\n"u8);
    }

    /// <summary>
    /// Like nginx's $proxy_add_x_forwarded_for: one X-Forwarded-For line, every line that came in joined in order, then
    /// the client address. Keeping only the first line would lose the address a proxy in front added on a line of its
    /// own (HAProxy's option forwardfor does), leaving a client's made-up one next to ours.
    /// </summary>
    private static void WriteForwardedFor(Span<byte> span, ref int n, ReadOnlySpan<byte> clientAddress, byte[] buffer, HeaderField[] headers, int first, int count)
    {
        Append(span, ref n, "X-Forwarded-For: "u8);
        for (int i = first; i < count; i++)
        {
            var field = headers[i];
            if (field.Value.Length == 0
                || (i != first && HeaderNames.Classify(buffer.AsSpan(field.Name.Start, field.Name.Length)) != HeaderDisposition.XForwardedFor))
            {
                continue;
            }

            Append(span, ref n, buffer.AsSpan(field.Value.Start, field.Value.Length));
            Append(span, ref n, ", "u8);
        }

        Append(span, ref n, clientAddress);
        Append(span, ref n, "\r\n"u8);
    }

    private static void AppendField(Span<byte> span, ref int n, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        Append(span, ref n, name);
        Append(span, ref n, ": "u8);
        Append(span, ref n, value);
        Append(span, ref n, "\r\n"u8);
    }

    private static void Append(Span<byte> span, ref int n, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(span[n..]);
        n += bytes.Length;
    }
}
