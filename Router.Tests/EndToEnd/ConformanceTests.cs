using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using NUnit.Framework;
using Router.Core.Configuration;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>
/// RFC 9112/9110 conformance end to end: raw request bytes into an in-process router, a recording upstream behind it.
/// Each case checks the status the client gets, that a rejection closes the connection, and exactly what reached the
/// upstream: nothing at all for a rejected head, one framing header for a forwarded one, never a smuggled request.
/// </summary>
public sealed partial class ConformanceTests
{
    /// <summary>One conformance case. <see cref="Request"/> is Latin-1 text, so any byte value can be written.</summary>
    public sealed record Case(
        string Name,
        string Section,
        string Request,
        int[] Statuses,
        bool Rejected,
        int UpstreamRequests,
        bool UpstreamReceivesNothing,
        string[] UpstreamHas,
        string[] UpstreamHasNot)
    {
        public override string ToString() => Name;
    }

    private static Case Forwarded(string name, string section, string request, int requests = 1, string[]? has = null, string[]? hasNot = null) =>
        new(name, section, request, Enumerable.Repeat(200, requests).ToArray(), Rejected: false, requests, false, has ?? [], hasNot ?? []);

    /// <summary>Rejected on the head: the upstream gets no byte at all.</summary>
    private static Case Rejected(string name, string section, string request, int status = 400, string[]? hasNot = null) =>
        new(name, section, request, [status], Rejected: true, 0, UpstreamReceivesNothing: true, [], hasNot ?? []);

    /// <summary>Rejected in the (chunked) body: the head was already forwarded; the bad bytes and anything after them never are.</summary>
    private static Case RejectedBody(string name, string section, string request, string[] hasNot) =>
        new(name, section, request, [400], Rejected: true, 0, UpstreamReceivesNothing: false, [], hasNot);

    private const string H = "Host: a.test\r\n";

    private static string Repeat(string s, int n) => string.Concat(Enumerable.Repeat(s, n));

    public static IEnumerable<TestCaseData> Cases() => All().Select(c => new TestCaseData(c).SetName("Conformance_" + c.Name));

    private static IEnumerable<Case> All()
    {
        // ---- Request line (RFC 9112 §3) ----
        yield return Forwarded("OriginForm_IsForwardedIntact", "9112 §3.2.1", "GET /a/b?q=1&r=%20 HTTP/1.1\r\n" + H + "\r\n", has: ["GET /a/b?q=1&r=%20 HTTP/1.1\r\n"]);
        yield return Forwarded("ExtensionMethod_IsForwarded", "9110 §9.1", "PURGE /x HTTP/1.1\r\n" + H + "\r\n", has: ["PURGE /x HTTP/1.1\r\n"]);
        yield return Forwarded("MethodIsCaseSensitive_LowercaseForwardedAsIs", "9110 §9.1", "get /x HTTP/1.1\r\n" + H + "\r\n", has: ["get /x HTTP/1.1\r\n"]);
        yield return Rejected("MethodWithNonTokenChar_400", "9112 §3.1", "G(T / HTTP/1.1\r\n" + H + "\r\n");
        yield return Rejected("MethodWithNul_400", "9112 §3.1", "GE\0T / HTTP/1.1\r\n" + H + "\r\n");
        yield return Rejected("LeadingSpace_400", "9112 §3", " GET / HTTP/1.1\r\n" + H + "\r\n");
        yield return Rejected("DoubleSpaceAfterMethod_400", "9112 §3", "GET  / HTTP/1.1\r\n" + H + "\r\n");
        yield return Rejected("TabAsSeparator_400", "9112 §3", "GET\t/ HTTP/1.1\r\n" + H + "\r\n");
        yield return Rejected("TrailingSpaceAfterVersion_400", "9112 §3", "GET / HTTP/1.1 \r\n" + H + "\r\n");
        yield return Rejected("MissingVersion_400", "9112 §3", "GET /\r\n" + H + "\r\n");
        yield return Forwarded("OneLeadingEmptyLine_IsIgnored", "9112 §2.2", "\r\nGET /x HTTP/1.1\r\n" + H + "\r\n", has: ["GET /x HTTP/1.1\r\n"]);
        yield return Rejected("TwoLeadingEmptyLines_400", "9112 §2.2 (chosen: at most one ignored)", "\r\n\r\nGET / HTTP/1.1\r\n" + H + "\r\n");
        yield return Rejected("TargetWithSpace_400", "9112 §3.2", "GET /a b HTTP/1.1\r\n" + H + "\r\n");
        yield return Rejected("TargetWithControlChar_400", "9112 §3.2", "GET /a\u0001b HTTP/1.1\r\n" + H + "\r\n");
        yield return Rejected("TargetWithDel_400", "9112 §3.2", "GET /a\u007fb HTTP/1.1\r\n" + H + "\r\n");
        yield return Rejected("TargetWithFragment_400", "9110 §4.2.5", "GET /a#frag HTTP/1.1\r\n" + H + "\r\n");
        yield return Rejected("AsteriskFormWithGet_400", "9112 §3.2.4", "GET * HTTP/1.1\r\n" + H + "\r\n");
        yield return Rejected("AuthorityFormWithGet_400", "9112 §3.2.3", "GET a.test:80 HTTP/1.1\r\n" + H + "\r\n");
        yield return Rejected("AbsoluteFormWithOtherScheme_400", "9112 §3.2.2", "GET ftp://a.test/ HTTP/1.1\r\n" + H + "\r\n");
        yield return Rejected("AbsoluteFormWithUserinfo_400", "9110 §4.2.4", "GET http://user@a.test/ HTTP/1.1\r\n" + H + "\r\n");
        yield return Forwarded(
            "AbsoluteForm_AuthorityWinsOverHost", "9112 §3.2.2",
            "GET http://b.test:8080/p?q HTTP/1.1\r\nHost: evil.test\r\n\r\n",
            has: ["GET /p?q HTTP/1.1\r\n", "\r\nHost: b.test:8080\r\n"], hasNot: ["evil.test", "http://"]);
        yield return Forwarded("DotSegments_AreRemovedFromThePath_NotTheQuery", "3986 §5.2.4",
            "GET /a/./b/../%2e%2E/c?x=/../ HTTP/1.1\r\n" + H + "\r\n", has: ["GET /c?x=/../ HTTP/1.1\r\n"]);
        yield return Rejected("RequestLineOver8KiB_414", "9112 §3 (limit)", "GET /" + new string('a', 9 * 1024) + " HTTP/1.1\r\n" + H + "\r\n", 414);
        yield return Rejected("QueryOver8KiB_414", "9112 §3 (limit)", "GET /?q=" + new string('q', 9 * 1024) + " HTTP/1.1\r\n" + H + "\r\n", 414);
        yield return Forwarded("LongQueryUnderTheLimit_IsForwardedIntact", "9112 §3", "GET /?q=" + new string('q', 8000) + " HTTP/1.1\r\n" + H + "\r\n",
            has: ["GET /?q=" + new string('q', 8000) + " HTTP/1.1\r\n"]);
        yield return Forwarded("AbsoluteFormWithoutPath_UpstreamGetsSlash", "9112 §3.2.2 / 3986 §6.2.3", "GET http://a.test HTTP/1.1\r\n" + H + "\r\n",
            has: ["GET / HTTP/1.1\r\n"], hasNot: ["http://"]);
        yield return Forwarded("AbsoluteFormWithOnlyAQuery_UpstreamGetsSlashAndTheQuery", "9112 §3.2.2 / 3986 §6.2.3", "GET http://a.test?x=1 HTTP/1.1\r\n" + H + "\r\n",
            has: ["GET /?x=1 HTTP/1.1\r\n"], hasNot: ["http://"]);
        yield return Rejected("BackslashInPath_400", "3986 §2 (chosen: upstreams read it as /)", "GET /public\\..\\admin HTTP/1.1\r\n" + H + "\r\n");
        yield return Rejected("BackslashInAbsoluteFormPath_400", "3986 §2 (chosen: upstreams read it as /)", "GET http://a.test/public\\..\\admin HTTP/1.1\r\n" + H + "\r\n");
        yield return Forwarded("BackslashInQuery_IsForwarded", "WHATWG URL (browsers send it raw)", "GET /a?x=\\y\\ HTTP/1.1\r\n" + H + "\r\n", has: ["GET /a?x=\\y\\ HTTP/1.1\r\n"]);
        yield return Forwarded("ObsTextInPath_IsForwardedIntact", "9112 §3.2 (nginx, Kestrel)", "GET /caf\u00e9/\u00ff HTTP/1.1\r\n" + H + "\r\n", has: ["GET /caf\u00e9/\u00ff HTTP/1.1\r\n"]);
        yield return Forwarded("EncodedNulSegment_IsAnOrdinarySegmentForDotRemoval", "3986 §2.1 (never decoded)", "GET /a%00b/../c HTTP/1.1\r\n" + H + "\r\n", has: ["GET /c HTTP/1.1\r\n"]);
        yield return Forwarded("EncodedNulInPath_StaysEncoded", "3986 §2.1 (never decoded)", "GET /a%00b HTTP/1.1\r\n" + H + "\r\n", has: ["GET /a%00b HTTP/1.1\r\n"]);

        // ---- HTTP version (RFC 9112 §2.3, RFC 9110 §6.2) ----
        yield return Rejected("Http20_505", "9110 §15.6.6", "GET / HTTP/2.0\r\n" + H + "\r\n", 505);
        yield return Rejected("Http12_505", "9110 §6.2 (chosen: only 1.0/1.1)", "GET / HTTP/1.2\r\n" + H + "\r\n", 505);
        yield return Rejected("Http09_505", "9110 §15.6.6", "GET / HTTP/0.9\r\n" + H + "\r\n", 505);
        yield return Rejected("Http3_400", "9112 §2.3", "GET / HTTP/3\r\n" + H + "\r\n");
        yield return Rejected("LowercaseHttpName_400", "9112 §2.3", "GET / http/1.1\r\n" + H + "\r\n");
        yield return Rejected("TwoDigitMinor_400", "9112 §2.3", "GET / HTTP/1.10\r\n" + H + "\r\n");
        yield return Forwarded("Http10WithoutHost_IsForwarded", "9112 §3.2", "GET /old HTTP/1.0\r\n\r\n", has: ["GET /old HTTP/1.0\r\n"]);

        // ---- Field syntax (RFC 9112 §5, §2.2) ----
        yield return Rejected("SpaceBeforeColon_400", "9112 §5.1", "GET / HTTP/1.1\r\nHost : a.test\r\n\r\n");
        yield return Rejected("TabBeforeColon_400", "9112 §5.1", "GET / HTTP/1.1\r\n" + H + "X-A\t: v\r\n\r\n");
        yield return Rejected("ObsFoldContinuation_400", "9112 §5.2", "GET / HTTP/1.1\r\n" + H + "X-A: v\r\n w\r\n\r\n");
        yield return Rejected("ObsFoldFirstLine_400", "9112 §5.2", "GET / HTTP/1.1\r\n\tX-A: v\r\n" + H + "\r\n");
        yield return Rejected("BareLfAfterRequestLine_400", "9112 §2.2 (chosen: CRLF only)", "GET / HTTP/1.1\n" + H + "\r\n");
        yield return Rejected("BareLfAfterField_400", "9112 §2.2 (chosen: CRLF only)", "GET / HTTP/1.1\r\nHost: a.test\n\r\n");
        yield return Rejected("BareLfEndOfHead_400", "9112 §2.2 (chosen: CRLF only)", "GET / HTTP/1.1\r\n" + H + "\n");
        yield return Rejected("BareLfSmuggledSecondRequest_400", "9112 §2.2", "GET / HTTP/1.1\r\n" + H + "X-A: v\nGET /smuggled HTTP/1.1\r\n\r\n", hasNot: ["smuggled"]);
        yield return Rejected("BareCrInValue_400", "9112 §2.2", "GET / HTTP/1.1\r\n" + H + "X-A: a\rb\r\n\r\n");
        yield return Rejected("BareCrInName_400", "9112 §2.2", "GET / HTTP/1.1\r\n" + H + "X\rA: a\r\n\r\n");
        yield return Rejected("NulInValue_400", "9110 §5.5", "GET / HTTP/1.1\r\n" + H + "X-A: a\0b\r\n\r\n");
        yield return Rejected("NulInName_400", "9110 §5.1", "GET / HTTP/1.1\r\n" + H + "X\0: a\r\n\r\n");
        yield return Rejected("ControlCharInValue_400", "9110 §5.5", "GET / HTTP/1.1\r\n" + H + "X-A: a\u0001b\r\n\r\n");
        yield return Rejected("DelInValue_400", "9110 §5.5", "GET / HTTP/1.1\r\n" + H + "X-A: a\u007fb\r\n\r\n");
        yield return Rejected("NonTokenInName_400", "9110 §5.1", "GET / HTTP/1.1\r\n" + H + "X(y): a\r\n\r\n");
        yield return Rejected("EmptyName_400", "9110 §5.1", "GET / HTTP/1.1\r\n" + H + ": a\r\n\r\n");
        yield return Rejected("LineWithoutColon_400", "9112 §5", "GET / HTTP/1.1\r\n" + H + "NoColon\r\n\r\n");
        yield return Forwarded("ObsTextInValue_IsForwardedIntact", "9110 §5.5", "GET / HTTP/1.1\r\n" + H + "X-A: caf\u00e9\u00ff\r\n\r\n", has: ["\r\nX-A: caf\u00e9\u00ff\r\n"]);
        yield return Forwarded("OwsAroundValue_IsTrimmed", "9112 §5.1", "GET / HTTP/1.1\r\n" + H + "X-A: \t v w \t\r\n\r\n", has: ["\r\nX-A: v w\r\n"]);
        yield return Forwarded("EmptyValue_IsForwarded", "9110 §5.5", "GET / HTTP/1.1\r\n" + H + "X-Empty:\r\n\r\n", has: ["\r\nX-Empty: \r\n"]);
        yield return Forwarded("HopByHop_AreRemoved", "9110 §7.6.1", "GET / HTTP/1.1\r\n" + H + "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Connection: x\r\nX-End: 2\r\n\r\n", has: ["\r\nX-End: 2\r\n"], hasNot: ["X-Hop", "Keep-Alive:", "\r\nTE:", "Proxy-Connection", "Connection: keep-alive, X-Hop"]);
        yield return Forwarded("UpgradeH2c_GoesAsAPlainRequest", "9113 §3.1 (h2c smuggling)",
            "GET / HTTP/1.1\r\n" + H + "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
            has: ["GET / HTTP/1.1\r\n"], hasNot: ["h2c", "HTTP2-Settings", "Upgrade"]);
        yield return Forwarded("UpgradeListNamingH2c_GoesAsAPlainRequest", "9113 §3.1 (h2c smuggling)",
            "GET / HTTP/1.1\r\n" + H + "Connection: upgrade\r\nUpgrade: foo/2, H2C\r\n\r\n", hasNot: ["H2C", "Upgrade"]);
        yield return Forwarded("UpgradeInHttp10_IsIgnored", "9110 §7.8", "GET / HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            has: ["GET / HTTP/1.0\r\n"], hasNot: ["websocket", "Upgrade"]);
        yield return Rejected("HeadersOver32KiB_431", "9110 §15.5.20 / RFC 6585 (limit)", "GET / HTTP/1.1\r\n" + H + Repeat("X-Pad: " + new string('p', 1000) + "\r\n", 34) + "\r\n", 431);
        yield return Rejected("Over100Fields_431", "RFC 6585 §5 (limit)", "GET / HTTP/1.1\r\n" + H + Repeat("X-F: 1\r\n", 100) + "\r\n", 431);
        yield return Forwarded("Exactly100Fields_IsForwarded", "limit boundary", "GET / HTTP/1.1\r\n" + H + Repeat("X-F: 1\r\n", 99) + "\r\n");

        // ---- Host (RFC 9112 §3.2, RFC 9110 §7.2) ----
        yield return Rejected("MissingHostOnHttp11_400", "9112 §3.2", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n");
        yield return Rejected("AbsoluteFormWithoutHostOnHttp11_400", "9112 §3.2", "GET http://a.test/ HTTP/1.1\r\n\r\n");
        yield return Rejected("TwoHostHeaders_400", "9112 §3.2", "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n");
        yield return Rejected("TwoIdenticalHostHeaders_400", "9112 §3.2", "GET / HTTP/1.1\r\nHost: a.test\r\nHost: a.test\r\n\r\n");
        yield return Rejected("HostWithSpace_400", "9110 §7.2", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n");
        yield return Rejected("HostWithUserinfo_400", "9110 §7.2", "GET / HTTP/1.1\r\nHost: user@a.test\r\n\r\n");
        yield return Rejected("HostWithPath_400", "9110 §7.2", "GET / HTTP/1.1\r\nHost: a.test/x\r\n\r\n");
        yield return Forwarded("HostWithPort_IsForwarded", "9110 §7.2", "GET / HTTP/1.1\r\nHost: a.test:8080\r\n\r\n", has: ["\r\nHost: a.test:8080\r\n"]);
        yield return Forwarded("HostIpv6LiteralWithPort_IsForwarded", "9110 §7.2", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", has: ["\r\nHost: [::1]:8080\r\n"]);
        yield return Forwarded("HostUpperCaseWithTrailingDot_IsForwardedAsSent", "9110 §7.2", "GET / HTTP/1.1\r\nHost: A.Test.\r\n\r\n", has: ["\r\nHost: A.Test.\r\n"]);
        yield return Forwarded("HostWithEmptyPort_IsForwarded", "3986 §3.2.3", "GET / HTTP/1.1\r\nHost: a.test:\r\n\r\n", has: ["\r\nHost: a.test:\r\n"]);
        yield return Rejected("HostNonAscii_400", "9110 §7.2", "GET / HTTP/1.1\r\nHost: caf\u00e9.test\r\n\r\n");
        yield return Rejected("HostPercentEncoded_400", "3986 §3.2.2 (chosen: no pct-encoded names)", "GET / HTTP/1.1\r\nHost: admin%2etest\r\n\r\n");
        yield return Rejected("AbsoluteFormPercentEncodedAuthority_400", "3986 §3.2.2 (chosen: no pct-encoded names)", "GET http://admin%2Etest/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
        yield return Rejected("HostPortNotDigits_400", "3986 §3.2.3", "GET / HTTP/1.1\r\nHost: a.test:x\r\n\r\n");
        yield return Rejected("HostTwoPorts_400", "3986 §3.2.3", "GET / HTTP/1.1\r\nHost: a.test:80:admin.test\r\n\r\n");
        yield return Rejected("HostTextAfterIpLiteral_400", "3986 §3.2.2", "GET / HTTP/1.1\r\nHost: [::1]admin.test\r\n\r\n");
        yield return Rejected("HostUnclosedIpLiteral_400", "3986 §3.2.2", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n");
        yield return Rejected("HostBracketInName_400", "3986 §3.2.2", "GET / HTTP/1.1\r\nHost: a]b.test\r\n\r\n");
        yield return Rejected("HostTwoTrailingDots_400", "1034 §3.1 (routing ignores one)", "GET / HTTP/1.1\r\nHost: admin.test..:80\r\n\r\n");

        // ---- Forwarding headers: what a client says about the path to the router never reaches the upstream as ours ----
        yield return Forwarded("ClientXForwardedProtoAndHost_AreReplaced_WhateverTheirCaseOrCount", "router sets X-Forwarded-Proto/Host",
            "GET / HTTP/1.1\r\n" + H + "X-Forwarded-Proto: https\r\nx-forwarded-proto: https\r\nX-FORWARDED-HOST: evil.test\r\nX-Forwarded-Host: evil2.test\r\n\r\n",
            has: ["\r\nX-Forwarded-Proto: http\r\n", "\r\nX-Forwarded-Host: a.test\r\n"], hasNot: ["https", "evil"]);
        yield return Forwarded("ClientForwardingFields_ListedInConnection_AreStillOurs", "9110 §7.6.1",
            "GET / HTTP/1.1\r\n" + H + "Connection: X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-For, Via\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\nX-Forwarded-For: 6.6.6.6\r\nVia: 1.0 evil\r\n\r\n",
            has: ["\r\nX-Forwarded-Proto: http\r\n", "\r\nX-Forwarded-Host: a.test\r\n", "\r\nX-Forwarded-For: 6.6.6.6, 127.0.0.1\r\n"], hasNot: ["https", "evil"]);
        yield return Forwarded("XForwardedForOnSeveralLines_AreJoined_OursLast", "9110 §5.3 (nginx joins them too)",
            "GET / HTTP/1.1\r\n" + H + "X-Forwarded-For: 6.6.6.6\r\nX-A: 1\r\nx-forwarded-for: 192.0.2.7\r\nX-Forwarded-For:\r\n\r\n",
            has: ["\r\nX-Forwarded-For: 6.6.6.6, 192.0.2.7, 127.0.0.1\r\n"], hasNot: ["x-forwarded-for", "X-Forwarded-For: 192", "X-Forwarded-For: \r\n"]);
        yield return Forwarded("OtherClientXForwardedFields_AreDropped", "router owns X-Forwarded-*",
            "GET / HTTP/1.1\r\n" + H + "X-Forwarded-Port: 443\r\nX-Forwarded-Ssl: on\r\nX-Forwarded-Scheme: https\r\nX-Forwarded-Prefix: /evil\r\nX-Forwarded-Server: evil.test\r\nX-Kept: 1\r\n\r\n",
            has: ["\r\nX-Kept: 1\r\n", "\r\nX-Forwarded-Proto: http\r\n"], hasNot: ["443", "X-Forwarded-Ssl", "https", "evil"]);
        yield return Forwarded("ClientForwarded_IsDropped", "7239 (chosen: the router speaks X-Forwarded-*)",
            "GET / HTTP/1.1\r\n" + H + "Forwarded: for=6.6.6.6;proto=https;host=admin.test\r\nFORWARDED: for=6.6.6.7\r\n\r\n",
            hasNot: ["\r\nForwarded:", "\r\nFORWARDED:", "6.6.6.", "https", "admin.test"]);
        yield return Forwarded("ClientXRealIp_IsDropped", "nginx X-Real-IP convention",
            "GET / HTTP/1.1\r\n" + H + "X-Real-IP: 6.6.6.6\r\nx-real-ip: 6.6.6.7\r\n\r\n", has: ["\r\nX-Forwarded-For: 127.0.0.1\r\n"], hasNot: ["6.6.6.", "real-ip", "Real-IP"]);
        yield return Forwarded("UnderscoreInFieldNames_AreDropped", "nginx underscores_in_headers off (CGI reads _ as -)",
            "GET / HTTP/1.1\r\n" + H + "X_Forwarded_For: 6.6.6.1\r\nX-Forwarded_Proto: https\r\nX-Real_IP: 6.6.6.2\r\nx_custom: v\r\nX-Kept: 1\r\n\r\n",
            has: ["\r\nX-Kept: 1\r\n", "\r\nX-Forwarded-For: 127.0.0.1\r\n", "\r\nX-Forwarded-Proto: http\r\n"], hasNot: ["_", "6.6.6.", "https"]);
        yield return Forwarded("ConnectionNamingContentLength_BodyStillFramed", "9110 §7.6.1 / 9112 §6.3",
            "POST /one HTTP/1.1\r\n" + H + "Connection: Content-Length\r\nContent-Length: 5\r\n\r\nhelloGET /two HTTP/1.1\r\n" + H + "\r\n", requests: 2,
            has: ["\r\nContent-Length: 5\r\n", "\r\n\r\nhelloGET /two HTTP/1.1\r\n"]);
        yield return Forwarded("ConnectionNamingTransferEncoding_BodyStillFramed", "9110 §7.6.1 / 9112 §6.3",
            "POST /one HTTP/1.1\r\n" + H + "Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /two HTTP/1.1\r\n" + H + "\r\n", requests: 2,
            has: ["\r\nTransfer-Encoding: chunked\r\n", "\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /two HTTP/1.1\r\n"]);
        yield return Forwarded("ConnectionNamingHost_HostStillSent", "9110 §7.6.1 / 9112 §3.2",
            "GET / HTTP/1.1\r\nConnection: Host\r\n" + H + "\r\n", has: ["\r\nHost: a.test\r\n"]);

        // ---- Framing (RFC 9112 §6) ----
        yield return Rejected("ContentLengthAndTransferEncoding_400", "9112 §6.1", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
        yield return Rejected("TransferEncodingAndContentLength_400", "9112 §6.1", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n");
        yield return Rejected(
            "ClTeSmuggling_SecondRequestNeverReachesUpstream", "9112 §6.1 / §11.2",
            "POST / HTTP/1.1\r\n" + H + "Content-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
            hasNot: ["smuggled"]);
        yield return Rejected("TeClSmuggling_ObfuscatedTe_400", "9112 §6.1", "POST / HTTP/1.1\r\n" + H + "Content-Length: 4\r\nTransfer-Encoding: xchunked\r\n\r\n5c\r\nGET /smuggled HTTP/1.1\r\n\r\n0\r\n\r\n", 400, hasNot: ["smuggled"]);
        yield return Rejected("TwoDifferentContentLengths_400", "9112 §6.3", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");
        yield return Rejected("ContentLengthListDiffering_400", "9110 §8.6", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5, 6\r\n\r\nhello!");
        yield return Forwarded("TwoEqualContentLengths_ForwardedAsOne", "9110 §8.6", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", has: ["\r\nContent-Length: 5\r\n", "\r\n\r\nhello"]);
        yield return Forwarded("ContentLengthListEqual_ForwardedAsOne", "9110 §8.6", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5, 5\r\n\r\nhello", has: ["\r\nContent-Length: 5\r\n"], hasNot: ["5, 5"]);
        yield return Rejected("ContentLengthWithPlusSign_400", "9110 §8.6", "POST / HTTP/1.1\r\n" + H + "Content-Length: +5\r\n\r\nhello");
        yield return Rejected("ContentLengthNegative_400", "9110 §8.6", "POST / HTTP/1.1\r\n" + H + "Content-Length: -1\r\n\r\n");
        yield return Rejected("ContentLengthHex_400", "9110 §8.6", "POST / HTTP/1.1\r\n" + H + "Content-Length: 0x5\r\n\r\nhello");
        yield return Rejected("ContentLengthInnerSpace_400", "9110 §8.6", "POST / HTTP/1.1\r\n" + H + "Content-Length: 1 2\r\n\r\nhello");
        yield return Rejected("ContentLengthEmpty_400", "9110 §8.6", "POST / HTTP/1.1\r\n" + H + "Content-Length:\r\n\r\n");
        yield return Rejected("ContentLengthOverflow_400", "9110 §8.6", "POST / HTTP/1.1\r\n" + H + "Content-Length: 9223372036854775808\r\n\r\n");
        yield return Forwarded("ContentLengthWithOws_IsNormalised", "9112 §5.1", "POST / HTTP/1.1\r\n" + H + "Content-Length: \t 5 \r\n\r\nhello", has: ["\r\nContent-Length: 5\r\n"]);
        yield return Forwarded("ContentLengthLeadingZeros_IsNormalised", "9110 §8.6", "POST / HTTP/1.1\r\n" + H + "Content-Length: 005\r\n\r\nhello", has: ["\r\nContent-Length: 5\r\n"], hasNot: ["005"]);
        yield return Rejected("TransferEncodingGzipOnly_400", "9112 §6.3", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip\r\n\r\n");
        yield return Rejected("TransferEncodingUnknown_501", "9112 §6.1", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: foo\r\n\r\n", 501);
        yield return Rejected("TransferEncodingIdentity_501", "9112 §6.1", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: identity\r\n\r\n", 501);
        yield return Rejected("TransferEncodingChunkedNotLast_400", "9112 §6.1", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked, gzip\r\n\r\n");
        yield return Rejected("TransferEncodingChunkedTwice_400", "9112 §6.1", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
        yield return Rejected("TransferEncodingQuoted_400", "9110 §5.6.2", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: \"chunked\"\r\n\r\n");
        yield return Rejected("TransferEncodingInHttp10_400", "9112 §6.1", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
        yield return Forwarded("TransferEncodingCaseInsensitive_IsForwarded", "9112 §7", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: ChUnKeD\r\n\r\n3\r\nabc\r\n0\r\n\r\n", has: ["\r\n\r\n3\r\nabc\r\n0\r\n\r\n"]);
        yield return Forwarded("TransferEncodingGzipChunked_IsForwardedAsOneLine", "9112 §6.1", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip, chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n", has: ["\r\nTransfer-Encoding: gzip, chunked\r\n"]);
        yield return Forwarded("TransferEncodingOverTwoLines_ForwardedAsOne", "9110 §5.3", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n", has: ["\r\nTransfer-Encoding: gzip, chunked\r\n"]);
        yield return Forwarded("PostWithoutFraming_HasNoBody", "9112 §6.3", "POST / HTTP/1.1\r\n" + H + "\r\n", hasNot: ["Content-Length", "Transfer-Encoding"]);
        yield return Forwarded("PipelinedGets_BothForwardedInOrder", "9112 §9.3.2", "GET /one HTTP/1.1\r\n" + H + "\r\nGET /two HTTP/1.1\r\n" + H + "\r\n", requests: 2, has: ["GET /one", "GET /two"]);
        yield return Forwarded("BodyThenPipelinedRequest_BodyEndsAtContentLength", "9112 §6.3", "POST /one HTTP/1.1\r\n" + H + "Content-Length: 5\r\n\r\nhelloGET /two HTTP/1.1\r\n" + H + "\r\n", requests: 2, has: ["\r\n\r\nhelloGET /two HTTP/1.1\r\n"]);

        // ---- Chunked body (RFC 9112 §7.1) ----
        yield return Forwarded(
            "ChunkedWithExtensionsAndTrailers_IsForwardedIntact", "9112 §7.1",
            "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n5;name=val;q=\"x\"\r\nhello\r\na\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
            has: ["\r\n\r\n5;name=val;q=\"x\"\r\nhello\r\na\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"]);
        yield return Forwarded("ChunkedThenPipelinedRequest_IsSeparate", "9112 §7.1", "POST /one HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /two HTTP/1.1\r\n" + H + "\r\n", requests: 2, has: ["GET /two HTTP/1.1\r\n"]);
        yield return RejectedBody("ChunkSizeOverflow_400", "9112 §7.1", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nx\r\n0\r\n\r\n", ["10000000000000000"]);
        yield return RejectedBody("ChunkSizeWithJunk_400", "9112 §7.1", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n", ["5x", "hello"]);
        yield return RejectedBody("ChunkSizeHexPrefix_400", "9112 §7.1", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", ["0x", "hello"]);
        yield return RejectedBody("ChunkSizeNegative_400", "9112 §7.1", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n-1\r\nhello\r\n0\r\n\r\n", ["-1", "hello"]);
        yield return RejectedBody("ChunkSizeEmpty_400", "9112 §7.1", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n", ["hello"]);
        yield return RejectedBody("ChunkExtensionWithControlChar_400", "9112 §7.1.1", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n5;a\u0001b\r\nhello\r\n0\r\n\r\n", ["hello"]);
        yield return RejectedBody("ChunkExtensionWithoutSemicolon_400", "9112 §7.1.1", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n5 junk\r\nhello\r\n0\r\n\r\n", ["junk", "hello"]);
        yield return RejectedBody("ChunkDataNotFollowedByCrlf_400", "9112 §7.1", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n", ["XX", "smuggled"]);
        yield return RejectedBody("ChunkSizeBareLf_400", "9112 §7.1 (chosen: CRLF only)", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", ["hello"]);
        yield return RejectedBody("TrailerBareLf_400", "9112 §7.1.2 (chosen: CRLF only)", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\n\r\n", ["X-T"]);
    }

    [TestCaseSource(nameof(Cases))]
    public async Task Case_Behaves(Case c)
    {
        TestContext.Out.WriteLine($"RFC {c.Section}");
        await using var upstream = new RecordingUpstream();
        var config = new RouterConfig
        {
            Routes = [Route("r", "c")],
            Clusters = [new ClusterConfig { Id = "c", Destinations = [new DestinationConfig { Address = upstream.Address }] }],
        };
        var router = RouterFixture.Start(config);
        try
        {
            using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
            await client.SendAsync(Encoding.Latin1.GetBytes(c.Request));
            var statuses = new List<int>();
            RawResponse? last = null;
            foreach (var _ in c.Statuses)
            {
                last = await client.ReadResponseAsync();
                statuses.Add(last.StatusCode);
            }

            Assert.That(statuses, Is.EqualTo(c.Statuses), "statuses the client got");
            if (c.Rejected)
            {
                Assert.That(last!.Header("Connection"), Is.EqualTo("close"), "a rejection says Connection: close");
                Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(5)), Is.True, "a rejection closes the connection");
            }
            else
            {
                Assert.That(await Eventually.TrueAsync(() => upstream.RequestCount >= c.UpstreamRequests, TimeSpan.FromSeconds(5)), Is.True);
            }
        }
        finally
        {
            // Stopping the router closes its upstream connections, so the recording is complete afterwards.
            await router.DisposeAsync();
        }

        Assert.That(await Eventually.TrueAsync(() => upstream.AllClosed, TimeSpan.FromSeconds(5)), Is.True, "router closed its upstream connections");
        var received = upstream.AllReceivedText;
        TestContext.Out.WriteLine("upstream received:\n" + received);
        if (c.UpstreamReceivesNothing)
        {
            Assert.That(received, Is.Empty, "a rejected head sends no byte upstream");
        }

        Assert.That(upstream.RequestCount, Is.EqualTo(c.UpstreamRequests), "requests the upstream could frame");
        foreach (var has in c.UpstreamHas)
        {
            Assert.That(received, Does.Contain(has));
        }

        foreach (var hasNot in c.UpstreamHasNot)
        {
            Assert.That(received, Does.Not.Contain(hasNot));
        }

        foreach (var head in upstream.Heads)
        {
            Assert.That(FramingHeader().Matches(head), Has.Count.LessThanOrEqualTo(1), "at most one framing header:\n" + head);
            Assert.That(head, Does.Contain("\r\nVia: 1.1 router\r\n"));
        }
    }

    [GeneratedRegex(@"\r\n(content-length|transfer-encoding):", RegexOptions.IgnoreCase)]
    private static partial Regex FramingHeader();

    // ---- Upstream-side strictness (the response parser): an ambiguous or malformed response is never passed through ----

    public static IEnumerable<TestCaseData> BadResponses()
    {
        static TestCaseData Bad(string name, string response) => new TestCaseData(response).SetName("BadUpstreamResponse_" + name + "_Is502");
        yield return Bad("ContentLengthAndTransferEncoding", "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED");
        yield return Bad("TwoDifferentContentLengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 10\r\n\r\nokSMUGGLED");
        yield return Bad("NonNumericStatus", "HTTP/1.1 2OO OK\r\nContent-Length: 8\r\n\r\nSMUGGLED");
        yield return Bad("TwoDigitStatus", "HTTP/1.1 20 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED");
        yield return Bad("Http2StatusLine", "HTTP/2.0 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED");
        yield return Bad("ObsFold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 8\r\n\r\nSMUGGLED");
        yield return Bad("BareLfInHeaders", "HTTP/1.1 200 OK\r\nContent-Length: 8\n\r\nSMUGGLED");
        yield return Bad("BareLfStatusLine", "HTTP/1.1 200 OK\nContent-Length: 8\r\n\r\nSMUGGLED");
        yield return Bad("SpaceBeforeColon", "HTTP/1.1 200 OK\r\nContent-Length : 8\r\n\r\nSMUGGLED");
        yield return Bad("NulInValue", "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 8\r\n\r\nSMUGGLED");
        yield return Bad("TransferEncodingNotChunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nSMUGGLED");
        yield return Bad("InvalidContentLength", "HTTP/1.1 200 OK\r\nContent-Length: +8\r\n\r\nSMUGGLED");
    }

    [TestCaseSource(nameof(BadResponses))]
    public async Task BadUpstreamResponse(string response)
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, response);
            socket.Shutdown(SocketShutdown.Send);
            await Task.Delay(2000);
        });
        var config = new RouterConfig
        {
            Routes = [Route("r", "c")],
            Clusters = [new ClusterConfig { Id = "c", Destinations = [new DestinationConfig { Address = upstream.Address }] }],
        };
        await using var router = RouterFixture.Start(config);
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
        var got = await client.ReadResponseAsync();

        Assert.That(got.StatusCode, Is.EqualTo(502));
        Assert.That(got.Head + got.BodyText, Does.Not.Contain("SMUGGLED").And.Not.Contain("X-A"));
    }

    [Test]
    public async Task UpstreamResponse_WithRepeatedEqualContentLength_ReachesClientWithOneFramingHeader()
    {
        await using var upstream = new ScriptedUpstream(async socket =>
        {
            await ScriptedUpstream.ReadHeadAsync(socket);
            await ScriptedUpstream.SendAsync(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok");
            await Task.Delay(2000);
        });
        var config = new RouterConfig
        {
            Routes = [Route("r", "c")],
            Clusters = [new ClusterConfig { Id = "c", Destinations = [new DestinationConfig { Address = upstream.Address }] }],
        };
        await using var router = RouterFixture.Start(config);
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
        var got = await client.ReadResponseAsync();

        Assert.That(got.StatusCode, Is.EqualTo(200));
        Assert.That(got.BodyText, Is.EqualTo("ok"));
        Assert.That(got.Headers.Count(h => h.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)), Is.EqualTo(1));
    }

    [Test]
    public void Suite_HasAtLeastSixtyRequestCases() => Assert.That(All().Count(), Is.GreaterThanOrEqualTo(60));
}
