using NUnit.Framework;
using Router.Core.Configuration;
using Router.Tests.Support;
using static Router.Tests.Support.TestConfigs;

namespace Router.Tests.EndToEnd;

/// <summary>
/// Request-side audit: a route for a host can be neither dodged nor wrongly hit by how the host is written, and the
/// upstream gets the host that was routed.
/// </summary>
public sealed class RequestSecurityAuditTests
{
    /// <summary>A route for host admin.test and a catch-all, each to its own recording upstream.</summary>
    private static RouterConfig AdminAndPublic(RecordingUpstream admin, RecordingUpstream pub) => new()
    {
        Routes = [Route("admin", "admin", hosts: ["admin.test"]), Route("public", "public")],
        Clusters =
        [
            new ClusterConfig { Id = "admin", Destinations = [new DestinationConfig { Address = admin.Address }] },
            new ClusterConfig { Id = "public", Destinations = [new DestinationConfig { Address = pub.Address }] },
        ],
    };

    // Routed to admin: any case, one trailing dot, a port; the upstream gets the Host as sent.
    [TestCase("Host: admin.test", "admin")]
    [TestCase("Host: ADMIN.Test", "admin")]
    [TestCase("Host: admin.test.", "admin")]
    [TestCase("Host: admin.test:8443", "admin")]
    [TestCase("Host: Admin.Test.:80", "admin")]
    // Other hosts, even close ones, are not admin's.
    [TestCase("Host: xadmin.test", "public")]
    [TestCase("Host: admin.test.evil", "public")]
    [TestCase("Host: [::1]:8080", "public")]
    [TestCase("Host: admin..test", "public")]
    // Written so a server could read admin.test where routing did not (or the reverse): refused, nothing goes up.
    [TestCase("Host: admin%2etest", null)]
    [TestCase("Host: admin%2Etest.", null)]
    [TestCase("Host: public.test:80:admin.test", null)]
    [TestCase("Host: admin.test:x", null)]
    [TestCase("Host: [::1]admin.test", null)]
    [TestCase("Host: admin.test]", null)]
    [TestCase("Host: admin.test..", null)]
    [TestCase("Host: admin.test..:443", null)]
    [TestCase("Host: admin.t\u00e9st", null)]
    public async Task HostRouting_CannotBeDodgedOrWronglyHit_AndTheUpstreamGetsTheHostThatWasRouted(string hostLine, string? routedTo)
    {
        await using var admin = new RecordingUpstream();
        await using var pub = new RecordingUpstream();
        await using var router = RouterFixture.Start(AdminAndPublic(admin, pub));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync(System.Text.Encoding.Latin1.GetBytes($"GET /x HTTP/1.1\r\n{hostLine}\r\n\r\n"));
        var response = await client.ReadResponseAsync();

        if (routedTo is null)
        {
            Assert.That(response.StatusCode, Is.EqualTo(400));
            Assert.That(admin.RequestCount + pub.RequestCount, Is.Zero, "a refused host reaches no upstream");
            return;
        }

        Assert.That(response.StatusCode, Is.EqualTo(200));
        var (hit, missed) = routedTo == "admin" ? (admin, pub) : (pub, admin);
        Assert.That(hit.Heads, Has.Count.EqualTo(1), "routed to " + routedTo);
        Assert.That(missed.RequestCount, Is.Zero);
        Assert.That(hit.Heads[0], Does.Contain("\r\n" + hostLine + "\r\n"), "the upstream gets the Host that was routed");
    }

    [TestCase("http://admin.test./x", "Host: other.test", "admin")]
    [TestCase("http://ADMIN.TEST:80/x", "Host: admin.test", "admin")]
    [TestCase("http://public.test/x", "Host: admin.test", "public")]
    [TestCase("http://admin%2etest/x", "Host: admin.test", null)]
    [TestCase("http://admin.test", "Host: admin.test", "admin")]
    [TestCase("http://admin.test?x", "Host: other.test", "admin")]
    public async Task AbsoluteForm_RoutesByItsAuthority_LikeTheUpstreamReadsIt(string target, string hostLine, string? routedTo)
    {
        await using var admin = new RecordingUpstream();
        await using var pub = new RecordingUpstream();
        await using var router = RouterFixture.Start(AdminAndPublic(admin, pub));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);
        await client.SendAsync($"GET {target} HTTP/1.1\r\n{hostLine}\r\n\r\n");
        var response = await client.ReadResponseAsync();

        if (routedTo is null)
        {
            Assert.That(response.StatusCode, Is.EqualTo(400));
            Assert.That(admin.RequestCount + pub.RequestCount, Is.Zero);
            return;
        }

        Assert.That(response.StatusCode, Is.EqualTo(200));
        var (hit, missed) = routedTo == "admin" ? (admin, pub) : (pub, admin);
        Assert.That(hit.Heads, Has.Count.EqualTo(1), "routed to " + routedTo);
        Assert.That(missed.RequestCount, Is.Zero);
        var authorityEnd = target.IndexOfAny(['/', '?'], "http://".Length);
        var authority = authorityEnd < 0 ? target["http://".Length..] : target["http://".Length..authorityEnd];
        var pathAndQuery = authorityEnd < 0 ? "/" : target[authorityEnd] == '?' ? "/" + target[authorityEnd..] : target[authorityEnd..];
        Assert.That(hit.Heads[0], Does.StartWith($"GET {pathAndQuery} HTTP/1.1\r\n"), "origin-form, the path at least /");
        Assert.That(hit.Heads[0], Does.Contain("\r\nHost: " + authority + "\r\n"), "the authority is the Host");
        if (!hostLine.EndsWith(authority, StringComparison.Ordinal))
        {
            Assert.That(hit.Heads[0], Does.Not.Contain(hostLine), "the Host header lost to the authority");
        }
    }

    [Test]
    public async Task Trace_Is405_NothingGoesUp_AndTheConnectionStaysUsable()
    {
        await using var upstream = new RecordingUpstream();
        await using var router = RouterFixture.Start(OneRoute(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);

        await client.SendAsync("TRACE / HTTP/1.1\r\nHost: a.test\r\nCookie: secret=1\r\n\r\n");
        var trace = await client.ReadResponseAsync();
        Assert.That(trace.StatusCode, Is.EqualTo(405));
        Assert.That(trace.BodyText, Does.Not.Contain("secret"));

        await client.SendAsync("GET /after HTTP/1.1\r\nHost: a.test\r\n\r\n");
        Assert.That((await client.ReadResponseAsync()).StatusCode, Is.EqualTo(200), "the connection is still in use");
        Assert.That(upstream.Heads, Has.Count.EqualTo(1));
        Assert.That(upstream.Heads[0], Does.StartWith("GET /after HTTP/1.1\r\n"), "the TRACE never went up");
    }

    [Test]
    public async Task Trace_WithABody_Is405_SaysClose_AndCloses()
    {
        await using var upstream = new RecordingUpstream();
        await using var router = RouterFixture.Start(OneRoute(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);

        await client.SendAsync("TRACE / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 28\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n");
        var trace = await client.ReadResponseAsync();
        Assert.That(trace.StatusCode, Is.EqualTo(405));
        Assert.That(trace.Header("Connection"), Is.EqualTo("close"), "an unread body cannot be skipped");
        Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That(upstream.RequestCount, Is.Zero);
    }

    [Test]
    public async Task Connect_Is501_SaysClose_AndCloses_NothingGoesUp()
    {
        await using var upstream = new RecordingUpstream();
        await using var router = RouterFixture.Start(OneRoute(upstream));
        using var client = await RawHttpClient.ConnectAsync(router.EndPoint);

        // What a client that thinks it has a tunnel sends next must not be read as a request.
        await client.SendAsync("CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n");
        var connect = await client.ReadResponseAsync();
        Assert.That(connect.StatusCode, Is.EqualTo(501));
        Assert.That(connect.Header("Connection"), Is.EqualTo("close"), "what follows may be tunnel bytes: never read as a request");
        Assert.That(await client.IsClosedByServerAsync(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That(upstream.RequestCount, Is.Zero, "the bytes after the CONNECT were not forwarded");
        Assert.That(upstream.Connections, Is.Empty, "no upstream connection was even opened");
    }

    private static RouterConfig OneRoute(RecordingUpstream upstream) => new()
    {
        Routes = [Route("r", "c")],
        Clusters = [new ClusterConfig { Id = "c", Destinations = [new DestinationConfig { Address = upstream.Address }] }],
    };
}
