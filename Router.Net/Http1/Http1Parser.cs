using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Router.Net.Transport;
using static Router.Net.Http1.RejectionReason;

namespace Router.Net.Http1;

/// <summary>
/// HTTP/1.1 request and response head parser (RFC 9112).
/// </summary>
/// <remarks>
/// Two passes: a scan over the (possibly segmented) input finds the end of the head and applies the limits
/// before anything is parsed; then the head is copied into the head's own buffer and parsed as one span, so
/// every field is a contiguous <see cref="HeadSegment"/> whatever the segmentation was.
/// <para>
/// Line endings: CRLF is required everywhere, on the request side and the response side alike. A bare LF
/// (which RFC 9112 §2.2 lets a recipient accept) and a bare CR are rejected: two parsers disagreeing about
/// where a line ends is how request smuggling starts, and we forward heads to parsers we don't control.
/// </para>
/// </remarks>
internal static class Http1Parser
{
    /// <summary>First rent for a head buffer: a browser head with cookies fits, so the first rent is usually the last.</summary>
    private const int MinHeadBuffer = 2048;

    private static readonly ulong Http11 = BinaryPrimitives.ReadUInt64LittleEndian("HTTP/1.1"u8);
    private static readonly ulong Http10 = BinaryPrimitives.ReadUInt64LittleEndian("HTTP/1.0"u8);

    /// <summary>
    /// Parses a whole request head. Returns false (consuming nothing) when more input is needed.
    /// On success the reader is advanced past the blank line. Invalid input throws <see cref="Http1Exception"/>.
    /// </summary>
    public static bool TryParseRequestHead(ref SequenceReader<byte> reader, HttpRequestHead head, HttpLimits limits)
    {
        if (!TryFindHead(ref reader, limits, upstream: false, out var skip, out var length, out var firstLine))
        {
            return false;
        }

        head.Reset();
        CopyHead(ref reader, skip, length, ref head.Buffer);
        head.Length = length;
        var span = head.Buffer.AsSpan(0, length);

        ParseRequestLine(span[..(firstLine - 2)], head);

        var fields = new FieldState(head.Host);
        ParseFieldLines(span, firstLine, ref head.Headers, ref head.HeaderCount, ref fields, upstream: false);

        if (head.Version == HttpVersion.Http11 && fields.HostCount == 0)
        {
            Http1Exception.Throw(MissingHost);
        }

        head.Host = fields.Host;
        head.ContentLength = fields.ContentLength;
        head.Chunked = fields.CheckFraming(head.Version, upstream: false);
        head.Connection = fields.Connection;
        // Never a tunnel for h2c (RFC 9113 §3.1 dropped it; passed on, it hands the client a raw HTTP/2 connection to the
        // upstream, past our routing: "h2c smuggling"; Envoy and YARP drop it too), nor for HTTP/1.0, whose Upgrade a
        // server must ignore (RFC 9110 §7.8). The request then goes as a plain one, without Upgrade.
        head.HasUpgrade = fields.Upgrade && !fields.UpgradeH2c && head.Version == HttpVersion.Http11;
        head.ExpectContinue = fields.ExpectContinue;
        head.UnderscoreInNames = fields.UnderscoreInNames;

        // Last: it may move the head to a larger buffer. Routing and the upstream see "/a/../b" as "/b".
        var path = head[head.Path];
        if (!path.IsEmpty && path[0] == (byte)'/' && PathNormalizer.MayHaveDotSegment(path))
        {
            PathNormalizer.Normalize(head);
        }

        reader.Advance(skip + length);
        return true;
    }

    /// <summary>
    /// Parses a whole response head; same contract as <see cref="TryParseRequestHead"/>. Every rejection carries
    /// status 502. A Transfer-Encoding that does not end in chunked (a body delimited by close) is rejected too.
    /// </summary>
    public static bool TryParseResponseHead(ref SequenceReader<byte> reader, HttpResponseHead head, HttpLimits limits)
    {
        if (!TryFindHead(ref reader, limits, upstream: true, out var skip, out var length, out var firstLine))
        {
            return false;
        }

        head.Reset();
        CopyHead(ref reader, skip, length, ref head.Buffer);
        head.Length = length;
        var span = head.Buffer.AsSpan(0, length);

        ParseStatusLine(span[..(firstLine - 2)], head);

        var fields = new FieldState(default);
        ParseFieldLines(span, firstLine, ref head.Headers, ref head.HeaderCount, ref fields, upstream: true);

        head.ContentLength = fields.ContentLength;
        head.Chunked = fields.CheckFraming(head.Version, upstream: true);
        head.TransferCoded = fields.OtherCoding;
        head.Connection = fields.Connection;
        head.KeepAliveTimeout = fields.KeepAliveTimeout;
        head.HasDate = fields.Date;

        reader.Advance(skip + length);
        return true;
    }

    // ---- Pass 1: find the head and apply the limits ----

    private static bool TryFindHead(ref SequenceReader<byte> reader, HttpLimits limits, bool upstream, out int skip, out int length, out int firstLine)
    {
        var scan = new HeadScan(limits, upstream);
        var first = reader.UnreadSpan;
        var found = scan.Scan(first, 0);
        if (!found)
        {
            long offset = first.Length;
            scan.CheckIncomplete(offset);
            if (offset < reader.Remaining)
            {
                foreach (var memory in reader.UnreadSequence.Slice(offset))
                {
                    if (scan.Scan(memory.Span, offset))
                    {
                        found = true;
                        break;
                    }

                    offset += memory.Length;
                    scan.CheckIncomplete(offset);
                }
            }
        }

        // The limits bound every offset below, so the narrowing is safe.
        skip = (int)scan.HeadStart;
        length = (int)(scan.End - scan.HeadStart);
        firstLine = (int)(scan.FirstLineEnd - scan.HeadStart);
        return found;
    }

    /// <summary>Line scanner carried across segments: finds each LF, checks its CR, counts lines and bytes against the limits.</summary>
    private struct HeadScan(HttpLimits limits, bool upstream)
    {
        public long HeadStart;
        public long FirstLineEnd = -1;
        public long End;
        private long _lineStart;
        private int _lines;
        private byte _previous;

        public bool Scan(ReadOnlySpan<byte> span, long offset)
        {
            var i = 0;
            while (true)
            {
                var index = span[i..].IndexOf((byte)'\n');
                if (index < 0)
                {
                    break;
                }

                var pos = i + index;
                var absolute = offset + pos;
                if ((pos > 0 ? span[pos - 1] : _previous) != (byte)'\r')
                {
                    Http1Exception.Throw(BareLineFeed, upstream);
                }

                var lineLength = absolute + 1 - _lineStart;
                if (FirstLineEnd < 0)
                {
                    if (lineLength == 2 && _lineStart == 0 && !upstream)
                    {
                        // RFC 9112 §2.2: ignore one empty line before a request line (old clients send CRLF after a body).
                        HeadStart = absolute + 1;
                    }
                    else
                    {
                        if (lineLength - 2 > limits.MaxRequestLineBytes)
                        {
                            Http1Exception.Throw(RequestLineTooLong, upstream);
                        }

                        FirstLineEnd = absolute + 1;
                    }
                }
                else
                {
                    if (absolute + 1 - FirstLineEnd > limits.MaxHeaderBytes)
                    {
                        Http1Exception.Throw(HeadersTooLarge, upstream);
                    }

                    if (lineLength == 2)
                    {
                        End = absolute + 1;
                        return true;
                    }

                    if (++_lines > limits.MaxHeaderCount)
                    {
                        Http1Exception.Throw(TooManyHeaders, upstream);
                    }
                }

                _lineStart = absolute + 1;
                i = pos + 1;
            }

            if (!span.IsEmpty)
            {
                _previous = span[^1];
            }

            return false;
        }

        /// <summary>Rejects as soon as what is buffered already breaks a limit, rather than waiting for an end that may never come.</summary>
        public readonly void CheckIncomplete(long buffered)
        {
            if (FirstLineEnd < 0)
            {
                // A CR at the very end may still become the line's CRLF.
                var pending = buffered - _lineStart - (_previous == (byte)'\r' ? 1 : 0);
                if (pending > limits.MaxRequestLineBytes)
                {
                    Http1Exception.Throw(RequestLineTooLong, upstream);
                }
            }
            else if (buffered - FirstLineEnd > limits.MaxHeaderBytes)
            {
                Http1Exception.Throw(HeadersTooLarge, upstream);
            }
        }
    }

    /// <summary>
    /// Header slots are rented (16 to start, doubling) and given back with the head buffer by
    /// <see cref="HttpRequestHead.Release"/>, so an idle keep-alive connection holds none.
    /// </summary>
    private static void GrowHeaders(ref HeaderField[] headers, int count)
    {
        var old = headers;
        headers = HeaderSlots.Rent(Math.Max(count * 2, HeaderSlots.Initial));
        if (old.Length > 0)
        {
            old.AsSpan(0, count).CopyTo(headers);
            HeaderSlots.Return(old);
        }
    }

    private static void CopyHead(ref SequenceReader<byte> reader, int skip, int length, ref byte[] buffer)
    {
        if (buffer.Length < length)
        {
            var old = buffer;
            buffer = PooledBytes.Rent(Math.Max(length, MinHeadBuffer));
            if (old.Length > 0)
            {
                PooledBytes.Return(old);
            }
        }

        var first = reader.UnreadSpan;
        if (first.Length >= skip + length)
        {
            first.Slice(skip, length).CopyTo(buffer);
        }
        else
        {
            reader.UnreadSequence.Slice(skip, length).CopyTo(buffer);
        }
    }

    // ---- Pass 2: parse the contiguous head ----

    private static void ParseRequestLine(ReadOnlySpan<byte> line, HttpRequestHead head)
    {
        var methodEnd = line.IndexOf((byte)' ');
        if (methodEnd <= 0)
        {
            Http1Exception.Throw(methodEnd == 0 ? InvalidMethod : InvalidRequestLine);
        }

        var method = line[..methodEnd];
        if (method.IndexOfAnyExcept(HttpCharacters.Token) >= 0)
        {
            Http1Exception.Throw(InvalidMethod);
        }

        head.MethodToken = new HeadSegment(0, methodEnd);
        head.Method = RecognizeMethod(method);

        var targetStart = methodEnd + 1;
        var targetLength = line[targetStart..].IndexOf((byte)' ');
        if (targetLength <= 0)
        {
            // No version (HTTP/0.9) or two spaces in a row.
            Http1Exception.Throw(InvalidRequestLine);
        }

        var version = line[(targetStart + targetLength + 1)..];
        if (version.Contains((byte)' '))
        {
            // "GET /a b HTTP/1.1": the space is inside the target.
            Http1Exception.Throw(InvalidRequestTarget);
        }

        head.Version = ParseVersion(version, upstream: false);

        var target = line.Slice(targetStart, targetLength);
        var bad = target.IndexOfAnyExcept(HttpCharacters.TargetWithoutBackslash);
        if (bad >= 0 && (target[bad] != (byte)'\\' || target[bad..].IndexOfAnyExcept(HttpCharacters.Target) >= 0))
        {
            Http1Exception.Throw(InvalidRequestTarget);
        }

        head.Target = new HeadSegment(targetStart, targetLength);
        if (head.Method == HttpMethod.Connect)
        {
            // authority-form, only for CONNECT (RFC 9112 §3.2.3): host ":" port.
            ValidateAuthorityForm(target);
            head.Host = head.Target;
        }
        else if (target[0] == (byte)'/')
        {
            SplitPathAndQuery(target, targetStart, head);
        }
        else if (target.Length == 1 && target[0] == (byte)'*')
        {
            if (head.Method != HttpMethod.Options)
            {
                Http1Exception.Throw(InvalidRequestTarget);
            }

            head.Path = head.Target;
        }
        else
        {
            ParseAbsoluteForm(target, targetStart, head);
        }

        // A backslash in the path: RFC 3986 has no raw '\', browsers turn it into '/', and IIS, Node's url.parse and
        // Envoy's normalisation read it as '/', so "/public\..\admin" would be routed as one path and served as
        // another. In the query (browsers send it raw there) it stays.
        if (bad >= 0 && head[head.Path].Contains((byte)'\\'))
        {
            Http1Exception.Throw(InvalidRequestTarget);
        }
    }

    private static HttpMethod RecognizeMethod(ReadOnlySpan<byte> method) => method.Length switch
    {
        3 when method.SequenceEqual("GET"u8) => HttpMethod.Get,
        3 when method.SequenceEqual("PUT"u8) => HttpMethod.Put,
        4 when method.SequenceEqual("POST"u8) => HttpMethod.Post,
        4 when method.SequenceEqual("HEAD"u8) => HttpMethod.Head,
        5 when method.SequenceEqual("PATCH"u8) => HttpMethod.Patch,
        5 when method.SequenceEqual("TRACE"u8) => HttpMethod.Trace,
        6 when method.SequenceEqual("DELETE"u8) => HttpMethod.Delete,
        7 when method.SequenceEqual("OPTIONS"u8) => HttpMethod.Options,
        7 when method.SequenceEqual("CONNECT"u8) => HttpMethod.Connect,
        _ => HttpMethod.Custom,
    };

    private static HttpVersion ParseVersion(ReadOnlySpan<byte> version, bool upstream)
    {
        if (version.Length == 8)
        {
            var value = BinaryPrimitives.ReadUInt64LittleEndian(version);
            if (value == Http11)
            {
                return HttpVersion.Http11;
            }

            if (value == Http10)
            {
                return HttpVersion.Http10;
            }

            if (version.StartsWith("HTTP/"u8) && char.IsAsciiDigit((char)version[5]) && version[6] == (byte)'.' && char.IsAsciiDigit((char)version[7]))
            {
                Http1Exception.Throw(HttpVersionNotSupported, upstream);
            }
        }

        Http1Exception.Throw(InvalidHttpVersion, upstream);
        return HttpVersion.Unknown;
    }

    private static void SplitPathAndQuery(ReadOnlySpan<byte> pathAndQuery, int start, HttpRequestHead head)
    {
        var query = pathAndQuery.IndexOf((byte)'?');
        if (query < 0)
        {
            head.Path = new HeadSegment(start, pathAndQuery.Length);
        }
        else
        {
            head.Path = new HeadSegment(start, query);
            head.Query = new HeadSegment(start + query, pathAndQuery.Length - query);
        }
    }

    /// <summary>absolute-form (RFC 9112 §3.2.2): http(s)://authority[/path][?query].</summary>
    private static void ParseAbsoluteForm(ReadOnlySpan<byte> target, int targetStart, HttpRequestHead head)
    {
        int scheme;
        if (target.Length > 7 && Ascii.EqualsIgnoreCase(target[..7], "http://"u8))
        {
            scheme = 7;
        }
        else if (target.Length > 8 && Ascii.EqualsIgnoreCase(target[..8], "https://"u8))
        {
            scheme = 8;
        }
        else
        {
            Http1Exception.Throw(InvalidRequestTarget);
            return;
        }

        var rest = target[scheme..];
        var authorityLength = rest.IndexOfAny((byte)'/', (byte)'?');
        if (authorityLength < 0)
        {
            authorityLength = rest.Length;
        }

        if (authorityLength == 0)
        {
            Http1Exception.Throw(InvalidRequestTarget);
        }

        if (!IsValidHost(rest[..authorityLength]))
        {
            // Includes userinfo ("user@host"), which RFC 9110 §4.2.4 says to treat as an error.
            Http1Exception.Throw(InvalidHost);
        }

        head.Host = new HeadSegment(targetStart + scheme, authorityLength);
        SplitPathAndQuery(rest[authorityLength..], targetStart + scheme + authorityLength, head);
        if (head.Path.Length == 0)
        {
            // "http://a.test" or "http://a.test?q": the path is "/" (RFC 3986 §6.2.3), here the last byte of "//".
            head.Path = new HeadSegment(targetStart + scheme - 1, 1);
        }
    }

    private static void ValidateAuthorityForm(ReadOnlySpan<byte> target)
    {
        var colon = target.LastIndexOf((byte)':');
        if (colon <= 0
            || colon == target.Length - 1
            || target.IndexOfAnyExcept(HttpCharacters.Host) >= 0
            || target[(colon + 1)..].IndexOfAnyExceptInRange((byte)'0', (byte)'9') >= 0)
        {
            Http1Exception.Throw(InvalidRequestTarget);
        }
    }

    private static void ParseStatusLine(ReadOnlySpan<byte> line, HttpResponseHead head)
    {
        // HTTP-version SP 3DIGIT SP [reason]; a missing SP after the code is tolerated (common, and unambiguous).
        if (line.Length < 12 || line[8] != (byte)' ')
        {
            Http1Exception.Throw(InvalidStatusLine, upstream: true);
        }

        head.Version = ParseVersion(line[..8], upstream: true);

        var d0 = line[9] - '0';
        var d1 = line[10] - '0';
        var d2 = line[11] - '0';
        if ((uint)(d0 - 1) > 8 || (uint)d1 > 9 || (uint)d2 > 9)
        {
            Http1Exception.Throw(InvalidStatusLine, upstream: true);
        }

        head.StatusCode = (d0 * 100) + (d1 * 10) + d2;

        if (line.Length > 12)
        {
            if (line[12] != (byte)' ' || line[13..].IndexOfAnyExcept(HttpCharacters.FieldValue) >= 0)
            {
                Http1Exception.Throw(InvalidStatusLine, upstream: true);
            }

            head.Reason = new HeadSegment(13, line.Length - 13);
        }
    }

    /// <summary>What the field lines said about framing and the connection, before it is checked as a whole.</summary>
    private ref struct FieldState(HeadSegment hostFromTarget)
    {
        public HeadSegment Host = hostFromTarget;
        public int HostCount;
        public long ContentLength = -1;
        public bool TransferEncoding;
        public bool AnyCoding;
        public bool ChunkedLast;
        public bool FinalCodingKnown;
        public bool OtherCoding;
        public ConnectionOptions Connection;
        public int KeepAliveTimeout = -1;
        public bool Date;
        public bool Upgrade;
        public bool UpgradeH2c;
        public bool ExpectContinue;
        public bool UnderscoreInNames;

        /// <summary>Applies the RFC 9112 §6.1/§6.3 rules that involve several fields; returns whether the body is chunked.</summary>
        public readonly bool CheckFraming(HttpVersion version, bool upstream)
        {
            if (!TransferEncoding)
            {
                return false;
            }

            if (version == HttpVersion.Http10)
            {
                Http1Exception.Throw(TransferEncodingInHttp10, upstream);
            }

            if (ContentLength >= 0)
            {
                Http1Exception.Throw(ContentLengthWithTransferEncoding, upstream);
            }

            if (!ChunkedLast)
            {
                // A coding we know but not ending in chunked: the length can't be determined (400).
                // A coding we don't know at all: 501 (RFC 9112 §6.1).
                Http1Exception.Throw(!AnyCoding || FinalCodingKnown ? ChunkedNotFinalEncoding : UnsupportedTransferEncoding, upstream);
            }

            return true;
        }
    }

    private static void ParseFieldLines(ReadOnlySpan<byte> head, int start, ref HeaderField[] headers, ref int count, ref FieldState fields, bool upstream)
    {
        var end = head.Length - 2; // the final empty line
        var pos = start;
        while (pos < end)
        {
            // Pass 1 proved every LF is preceded by CR.
            var lf = head[pos..].IndexOf((byte)'\n');
            ParseFieldLine(head.Slice(pos, lf - 1), pos, ref headers, ref count, ref fields, upstream);
            pos += lf + 1;
        }
    }

    private static void ParseFieldLine(ReadOnlySpan<byte> line, int lineStart, ref HeaderField[] headers, ref int count, ref FieldState fields, bool upstream)
    {
        if (line[0] is (byte)' ' or (byte)'\t')
        {
            Http1Exception.Throw(ObsoleteLineFolding, upstream);
        }

        var colon = line.IndexOf((byte)':');
        if (colon <= 0)
        {
            Http1Exception.Throw(colon == 0 ? InvalidHeaderName : InvalidHeader, upstream);
        }

        var name = line[..colon];
        var bad = name.IndexOfAnyExcept(HttpCharacters.TokenWithoutUnderscore);
        if (bad >= 0 && name[bad] == (byte)'_')
        {
            fields.UnderscoreInNames = true;
            bad = name.IndexOfAnyExcept(HttpCharacters.Token);
        }

        if (bad >= 0)
        {
            // Covers "Name : value" (whitespace before the colon, RFC 9112 §5.1).
            Http1Exception.Throw(name[bad] == (byte)'\r' ? BareCarriageReturn : InvalidHeaderName, upstream);
        }

        var valueStart = colon + 1;
        var valueEnd = line.Length;
        while (valueStart < valueEnd && line[valueStart] is (byte)' ' or (byte)'\t')
        {
            valueStart++;
        }

        while (valueEnd > valueStart && line[valueEnd - 1] is (byte)' ' or (byte)'\t')
        {
            valueEnd--;
        }

        var value = line[valueStart..valueEnd];
        bad = value.IndexOfAnyExcept(HttpCharacters.FieldValue);
        if (bad >= 0)
        {
            Http1Exception.Throw(value[bad] == (byte)'\r' ? BareCarriageReturn : InvalidHeaderValue, upstream);
        }

        if (count == headers.Length)
        {
            GrowHeaders(ref headers, count);
        }

        var valueSegment = new HeadSegment(lineStart + valueStart, value.Length);
        headers[count++] = new HeaderField(new HeadSegment(lineStart, colon), valueSegment);

        // Only the few fields we act on are recognised: by length first, then a case-insensitive byte compare.
        switch (name.Length)
        {
            case 4 when !upstream && Ascii.EqualsIgnoreCase(name, "Host"u8):
                OnHost(value, valueSegment, ref fields);
                break;
            case 4 when upstream && Ascii.EqualsIgnoreCase(name, "Date"u8):
                fields.Date = true;
                break;
            case 6 when !upstream && Ascii.EqualsIgnoreCase(name, "Expect"u8):
                fields.ExpectContinue |= Ascii.EqualsIgnoreCase(value, "100-continue"u8);
                break;
            case 7 when !upstream && Ascii.EqualsIgnoreCase(name, "Upgrade"u8):
                fields.Upgrade = true;
                fields.UpgradeH2c |= NamesH2c(value);
                break;
            case 10 when Ascii.EqualsIgnoreCase(name, "Connection"u8):
                fields.Connection |= ParseConnection(value);
                break;
            case 10 when upstream && Ascii.EqualsIgnoreCase(name, "Keep-Alive"u8):
                fields.KeepAliveTimeout = ParseKeepAliveTimeout(value, fields.KeepAliveTimeout);
                break;
            case 14 when Ascii.EqualsIgnoreCase(name, "Content-Length"u8):
                fields.ContentLength = ParseContentLength(value, fields.ContentLength, upstream);
                break;
            case 17 when Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8):
                ParseTransferEncoding(value, ref fields, upstream);
                break;
        }
    }

    private static void OnHost(ReadOnlySpan<byte> value, HeadSegment segment, ref FieldState fields)
    {
        if (++fields.HostCount > 1)
        {
            Http1Exception.Throw(MultipleHost);
        }

        // An empty Host is valid (RFC 9112 §3.2: a target without authority); routing decides what it matches.
        if (!IsValidHost(value))
        {
            Http1Exception.Throw(InvalidHost);
        }

        // The authority of an absolute-form or authority-form target wins over the header (RFC 9112 §3.2.2).
        if (fields.Host.IsEmpty)
        {
            fields.Host = segment;
        }
    }

    /// <summary>
    /// uri-host [":" port] (RFC 9110 §7.2), where uri-host is "[" IPv6 "]" or a reg-name without percent-encoding.
    /// Routing and the upstream must read the same host: "a.test:80:b.test", "[::1]b.test" and "a%2etest" (decoded by
    /// some servers, never sent by a client: IDNs go as punycode) would not; nor "a.test..", as routing ignores one
    /// trailing dot, not two (nginx refuses any "..", which a scan would cost every request).
    /// </summary>
    private static bool IsValidHost(ReadOnlySpan<byte> host)
    {
        // Most hosts are a bare name: one scan, and the rest only for a port or an IPv6 literal.
        var bad = host.IndexOfAnyExcept(HttpCharacters.RegName);
        return bad < 0 ? !EndsWithTwoDots(host) : IsValidHostWithPort(host, bad);
    }

    private static bool IsValidHostWithPort(ReadOnlySpan<byte> host, int bad)
    {
        var rest = host[bad..];
        if (bad == 0 && rest[0] == (byte)'[')
        {
            var close = rest.IndexOf((byte)']');
            if (close < 2 || rest[1..close].IndexOfAnyExcept(HttpCharacters.Ipv6) >= 0)
            {
                return false;
            }

            rest = rest[(close + 1)..];
            if (rest.IsEmpty)
            {
                return true;
            }
        }
        else if (EndsWithTwoDots(host[..bad]))
        {
            return false;
        }

        // The port: digits, possibly none (RFC 3986 §3.2.3).
        return rest[0] == (byte)':' && rest[1..].IndexOfAnyExceptInRange((byte)'0', (byte)'9') < 0;
    }

    private static bool EndsWithTwoDots(ReadOnlySpan<byte> name) => name.Length > 1 && name[^1] == (byte)'.' && name[^2] == (byte)'.';

    private static ConnectionOptions ParseConnection(ReadOnlySpan<byte> value)
    {
        var options = ConnectionOptions.None;
        while (true)
        {
            var comma = value.IndexOf((byte)',');
            var token = TrimWhitespace(comma < 0 ? value : value[..comma]);
            if (token.Length == 5 && Ascii.EqualsIgnoreCase(token, "close"u8))
            {
                options |= ConnectionOptions.Close;
            }
            else if (token.Length == 10 && Ascii.EqualsIgnoreCase(token, "keep-alive"u8))
            {
                options |= ConnectionOptions.KeepAlive;
            }
            else if (token.Length == 7 && Ascii.EqualsIgnoreCase(token, "upgrade"u8))
            {
                options |= ConnectionOptions.Upgrade;
            }
            else if (!token.IsEmpty)
            {
                options |= ConnectionOptions.Other;
            }

            if (comma < 0)
            {
                return options;
            }

            value = value[(comma + 1)..];
        }
    }

    /// <summary>
    /// The <c>timeout=N</c> parameter of a Keep-Alive field (<c>timeout=5, max=100</c>): the smallest given, capped at a
    /// day; anything malformed is ignored (it is a hint, and the connection's own close still ends it).
    /// </summary>
    private static int ParseKeepAliveTimeout(ReadOnlySpan<byte> value, int current)
    {
        while (true)
        {
            var comma = value.IndexOf((byte)',');
            var parameter = TrimWhitespace(comma < 0 ? value : value[..comma]);
            var equals = parameter.IndexOf((byte)'=');
            if (equals > 0 && Ascii.EqualsIgnoreCase(TrimWhitespace(parameter[..equals]), "timeout"u8))
            {
                var digits = TrimWhitespace(parameter[(equals + 1)..]);
                if (!digits.IsEmpty && digits.IndexOfAnyExceptInRange((byte)'0', (byte)'9') < 0)
                {
                    int seconds = 0;
                    foreach (var b in digits)
                    {
                        seconds = Math.Min((seconds * 10) + (b - '0'), 86_400);
                    }

                    current = current < 0 ? seconds : Math.Min(current, seconds);
                }
            }

            if (comma < 0)
            {
                return current;
            }

            value = value[(comma + 1)..];
        }
    }

    /// <summary>
    /// Content-Length: digits only. A comma list or repeated header with identical values counts as one length
    /// (RFC 9110 §8.6 allows a recipient to accept that); differing values are rejected.
    /// </summary>
    private static long ParseContentLength(ReadOnlySpan<byte> value, long current, bool upstream)
    {
        while (true)
        {
            var comma = value.IndexOf((byte)',');
            var element = TrimWhitespace(comma < 0 ? value : value[..comma]);
            if (element.IsEmpty)
            {
                Http1Exception.Throw(InvalidContentLength, upstream);
            }

            long length = 0;
            foreach (var b in element)
            {
                var digit = (uint)(b - '0');
                if (digit > 9 || length > (long.MaxValue - digit) / 10)
                {
                    Http1Exception.Throw(InvalidContentLength, upstream);
                }

                length = (length * 10) + digit;
            }

            if (current >= 0 && current != length)
            {
                Http1Exception.Throw(ConflictingContentLength, upstream);
            }

            current = length;
            if (comma < 0)
            {
                return current;
            }

            value = value[(comma + 1)..];
        }
    }

    /// <summary>Transfer-Encoding (RFC 9112 §6.1): codings across all TE fields, in order; chunked must be last and once.</summary>
    private static void ParseTransferEncoding(ReadOnlySpan<byte> value, ref FieldState fields, bool upstream)
    {
        fields.TransferEncoding = true;
        while (true)
        {
            var comma = value.IndexOf((byte)',');
            var coding = comma < 0 ? value : value[..comma];
            var parameters = coding.IndexOf((byte)';');
            coding = TrimWhitespace(parameters < 0 ? coding : coding[..parameters]);

            // Empty list elements are allowed (RFC 9110 §5.6.1).
            if (!coding.IsEmpty)
            {
                if (fields.ChunkedLast)
                {
                    Http1Exception.Throw(ChunkedNotFinalEncoding, upstream);
                }

                if (coding.IndexOfAnyExcept(HttpCharacters.Token) >= 0)
                {
                    Http1Exception.Throw(InvalidHeaderValue, upstream);
                }

                fields.AnyCoding = true;
                if (coding.Length == 7 && Ascii.EqualsIgnoreCase(coding, "chunked"u8))
                {
                    fields.ChunkedLast = true;
                }
                else
                {
                    fields.OtherCoding = true;
                    fields.FinalCodingKnown = IsKnownCoding(coding);
                }
            }

            if (comma < 0)
            {
                return;
            }

            value = value[(comma + 1)..];
        }
    }

    /// <summary>An Upgrade list (RFC 9110 §7.8: protocol["/" version], comma-separated) that names h2c.</summary>
    private static bool NamesH2c(ReadOnlySpan<byte> value)
    {
        while (true)
        {
            var comma = value.IndexOf((byte)',');
            if (Ascii.EqualsIgnoreCase(TrimWhitespace(comma < 0 ? value : value[..comma]), "h2c"u8))
            {
                return true;
            }

            if (comma < 0)
            {
                return false;
            }

            value = value[(comma + 1)..];
        }
    }

    private static bool IsKnownCoding(ReadOnlySpan<byte> coding) =>
        Ascii.EqualsIgnoreCase(coding, "gzip"u8)
        || Ascii.EqualsIgnoreCase(coding, "deflate"u8)
        || Ascii.EqualsIgnoreCase(coding, "compress"u8)
        || Ascii.EqualsIgnoreCase(coding, "x-gzip"u8)
        || Ascii.EqualsIgnoreCase(coding, "x-compress"u8);

    private static ReadOnlySpan<byte> TrimWhitespace(ReadOnlySpan<byte> span) => span.Trim(" \t"u8);
}
