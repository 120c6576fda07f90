using System.Text;
using NUnit.Framework;
using static Router.Tests.Core.Routing.RoutingTestConfigs;

namespace Router.Tests.Core.Routing;

public sealed class RoutingSnapshotMatchTests
{
    [Test]
    public void ExactHost_MatchesOnlyThatHost()
    {
        var snapshot = Compile(Route("api", hosts: ["api.example.test"]));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("api.example.test", "/x"), Is.EqualTo("api"));
            Assert.That(snapshot.MatchId("www.example.test", "/x"), Is.Null);
            Assert.That(snapshot.MatchId("example.test", "/x"), Is.Null);
        });
    }

    [TestCase("api.example.test:8080")]
    [TestCase("API.Example.TEST")]
    [TestCase("api.example.test.")]
    [TestCase("Api.Example.Test.:443")]
    public void ExactHost_IgnoresPortCaseAndTrailingDot(string host)
    {
        var snapshot = Compile(Route("api", hosts: ["api.example.test"]));

        Assert.That(snapshot.MatchId(host, "/"), Is.EqualTo("api"));
    }

    [Test]
    public void ConfigHost_IsNormalisedLikeRequestHost()
    {
        var snapshot = Compile(Route("api", hosts: ["API.Example.Test."]));

        Assert.That(snapshot.MatchId("api.example.test", "/"), Is.EqualTo("api"));
    }

    [Test]
    public void NonAsciiHost_MatchesItsUtf8Bytes_AsciiLettersCaseInsensitive()
    {
        var snapshot = Compile(Route("idn", hosts: ["bücher.example.test"]), Route("wild", hosts: ["*.bücher.test"]));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("bücher.example.test", "/"), Is.EqualTo("idn"));
            Assert.That(snapshot.MatchId("BüCHER.example.test", "/"), Is.EqualTo("idn"));
            Assert.That(snapshot.MatchId("a.bücher.test", "/"), Is.EqualTo("wild"));
        });
    }

    [TestCase("[::1]:8080")]
    [TestCase("[::1]")]
    public void Ipv6LiteralHost_MatchesWithoutBracketsAndPort(string host)
    {
        var snapshot = Compile(Route("v6", hosts: ["[::1]"]));

        Assert.That(snapshot.MatchId(host, "/"), Is.EqualTo("v6"));
    }

    [Test]
    public void Wildcard_MatchesSubdomainsAtAnyDepthButNotTheApex()
    {
        var snapshot = Compile(Route("wild", hosts: ["*.example.test"]));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("a.example.test", "/"), Is.EqualTo("wild"));
            Assert.That(snapshot.MatchId("a.b.example.test:80", "/"), Is.EqualTo("wild"));
            Assert.That(snapshot.MatchId("A.EXAMPLE.TEST.", "/"), Is.EqualTo("wild"));
            Assert.That(snapshot.MatchId("example.test", "/"), Is.Null);
            Assert.That(snapshot.MatchId("aexample.test", "/"), Is.Null);
            Assert.That(snapshot.MatchId("a.example.testx", "/"), Is.Null);
        });
    }

    [Test]
    public void Wildcard_MostSpecificSuffixWins()
    {
        var snapshot = Compile(
            Route("broad", hosts: ["*.example.test"]),
            Route("narrow", hosts: ["*.b.example.test"]));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("a.b.example.test", "/"), Is.EqualTo("narrow"));
            Assert.That(snapshot.MatchId("x.y.b.example.test", "/"), Is.EqualTo("narrow"));
            Assert.That(snapshot.MatchId("a.c.example.test", "/"), Is.EqualTo("broad"));
            Assert.That(snapshot.MatchId("b.example.test", "/"), Is.EqualTo("broad"));
        });
    }

    [Test]
    public void Wildcard_FallsThroughToLessSpecificWhenPathDoesNotMatch()
    {
        var snapshot = Compile(
            Route("broad", hosts: ["*.example.test"]),
            Route("narrow", "/only/", hosts: ["*.b.example.test"]));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("a.b.example.test", "/only/x"), Is.EqualTo("narrow"));
            Assert.That(snapshot.MatchId("a.b.example.test", "/other"), Is.EqualTo("broad"));
        });
    }

    [Test]
    public void ManyNestedWildcards_StillPickMostSpecific()
    {
        string[] suffixes = ["l", "k.l", "j.k.l", "i.j.k.l", "h.i.j.k.l", "g.h.i.j.k.l", "f.g.h.i.j.k.l", "e.f.g.h.i.j.k.l", "d.e.f.g.h.i.j.k.l", "c.d.e.f.g.h.i.j.k.l"];
        var routes = suffixes
            .Select(suffix => Route(suffix, hosts: ["*." + suffix]))
            .ToArray();
        var snapshot = Compile(routes);

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("a.b.c.d.e.f.g.h.i.j.k.l", "/"), Is.EqualTo("c.d.e.f.g.h.i.j.k.l"));
            Assert.That(snapshot.MatchId("z.k.l", "/"), Is.EqualTo("k.l"));
        });
    }

    [Test]
    public void CatchAll_MatchesAnyHostIncludingNone()
    {
        var snapshot = Compile(Route("any"));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("whatever.test", "/a"), Is.EqualTo("any"));
            Assert.That(snapshot.MatchId("", "/a"), Is.EqualTo("any"));
            Assert.That(snapshot.MatchId("10.0.0.1:80", "/a"), Is.EqualTo("any"));
        });
    }

    [Test]
    public void StarHost_IsTheCatchAll()
    {
        var snapshot = Compile(Route("star", hosts: ["*"]));

        Assert.That(snapshot.MatchId("anything.test", "/"), Is.EqualTo("star"));
    }

    [Test]
    public void ExactHost_BeatsWildcard_BeatsAnyHost()
    {
        var snapshot = Compile(
            Route("any"),
            Route("wild", hosts: ["*.example.test"]),
            Route("exact", hosts: ["api.example.test"]));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("api.example.test", "/"), Is.EqualTo("exact"));
            Assert.That(snapshot.MatchId("www.example.test", "/"), Is.EqualTo("wild"));
            Assert.That(snapshot.MatchId("other.test", "/"), Is.EqualTo("any"));
        });
    }

    [Test]
    public void HostPrecedence_BeatsLongerPrefixInALessSpecificGroup()
    {
        var snapshot = Compile(
            Route("any-long", "/api/v1/users/"),
            Route("exact-short", "/", hosts: ["api.example.test"]));

        Assert.That(snapshot.MatchId("api.example.test", "/api/v1/users/1"), Is.EqualTo("exact-short"));
    }

    [Test]
    public void ExactHost_FallsThroughWhenNoRouteForPath()
    {
        var snapshot = Compile(
            Route("any", "/static/"),
            Route("wild", "/wild/", hosts: ["*.example.test"]),
            Route("exact", "/api/", hosts: ["api.example.test"]));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("api.example.test", "/api/x"), Is.EqualTo("exact"));
            Assert.That(snapshot.MatchId("api.example.test", "/wild/x"), Is.EqualTo("wild"));
            Assert.That(snapshot.MatchId("api.example.test", "/static/x"), Is.EqualTo("any"));
            Assert.That(snapshot.MatchId("api.example.test", "/nothing"), Is.Null);
        });
    }

    [Test]
    public void LongestPrefix_Wins_RegardlessOfConfigOrder()
    {
        var snapshot = Compile(
            Route("root", "/"),
            Route("api", "/api/"),
            Route("users", "/api/users/"),
            Route("v2", "/api/v2/"));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("h", "/api/users/7"), Is.EqualTo("users"));
            Assert.That(snapshot.MatchId("h", "/api/v2/x"), Is.EqualTo("v2"));
            Assert.That(snapshot.MatchId("h", "/api/other"), Is.EqualTo("api"));
            Assert.That(snapshot.MatchId("h", "/"), Is.EqualTo("root"));
            Assert.That(snapshot.MatchId("h", "/else"), Is.EqualTo("root"));
        });
    }

    [Test]
    public void PathPrefix_IsCaseSensitive()
    {
        var snapshot = Compile(Route("api", "/api/"));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("h", "/api/x"), Is.EqualTo("api"));
            Assert.That(snapshot.MatchId("h", "/API/x"), Is.Null);
        });
    }

    [Test]
    public void MethodFilter_AllowsOnlyListedMethods_AndNoMatchOtherwise()
    {
        var snapshot = Compile(Route("read", "/api/", methods: ["GET", "HEAD"]));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("h", "/api/x", "GET"), Is.EqualTo("read"));
            Assert.That(snapshot.MatchId("h", "/api/x", "HEAD"), Is.EqualTo("read"));
            Assert.That(snapshot.MatchId("h", "/api/x", "POST"), Is.Null);
            Assert.That(snapshot.MatchId("h", "/api/x", "get"), Is.Null, "methods are case-sensitive on the wire");
            Assert.That(snapshot.MatchId("h", "/api/x", "PURGE"), Is.Null);
        });
    }

    [Test]
    public void MethodFilter_KnownMethodInConfigIsCaseInsensitive()
    {
        var snapshot = Compile(Route("post", methods: ["post"]));

        Assert.That(snapshot.MatchId("h", "/", "POST"), Is.EqualTo("post"));
    }

    [Test]
    public void MethodFilter_CustomMethodsMatchExactly()
    {
        var snapshot = Compile(Route("purge", methods: ["PURGE", "GET"]));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("h", "/", "PURGE"), Is.EqualTo("purge"));
            Assert.That(snapshot.MatchId("h", "/", "GET"), Is.EqualTo("purge"));
            Assert.That(snapshot.MatchId("h", "/", "PURGEX"), Is.Null);
            Assert.That(snapshot.MatchId("h", "/", "POST"), Is.Null);
        });
    }

    [Test]
    public void NoMethodFilter_AllowsAnyMethodIncludingCustom()
    {
        var snapshot = Compile(Route("all"));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("h", "/", "DELETE"), Is.EqualTo("all"));
            Assert.That(snapshot.MatchId("h", "/", "PROPFIND"), Is.EqualTo("all"));
        });
    }

    [Test]
    public void SamePrefix_MethodSpecificRouteBeatsAnyMethodRoute()
    {
        var snapshot = Compile(
            Route("any-method", "/api/"),
            Route("writes", "/api/", methods: ["POST", "PUT"]));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("h", "/api/x", "POST"), Is.EqualTo("writes"));
            Assert.That(snapshot.MatchId("h", "/api/x", "GET"), Is.EqualTo("any-method"));
        });
    }

    [Test]
    public void MethodMismatchOnLongerPrefix_FallsBackToShorterPrefix()
    {
        var snapshot = Compile(
            Route("root", "/"),
            Route("upload", "/upload/", methods: ["POST"]));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("h", "/upload/a", "POST"), Is.EqualTo("upload"));
            Assert.That(snapshot.MatchId("h", "/upload/a", "GET"), Is.EqualTo("root"));
        });
    }

    [Test]
    public void SameHostTwiceInOneRoute_IsHarmless()
    {
        var snapshot = Compile(
            Route("twice", hosts: ["a.test", "A.TEST.", "*.x.test", "*.X.test"]));

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.MatchId("a.test", "/"), Is.EqualTo("twice"));
            Assert.That(snapshot.MatchId("b.x.test", "/"), Is.EqualTo("twice"));
        });
    }

    [Test]
    public void ThousandsOfExactHosts_EachMatchItsOwnRoute()
    {
        var routes = Enumerable.Range(0, 5000)
            .Select(i => Route($"r{i}", $"/svc{i}/", hosts: [$"host{i}.example.test"]))
            .ToArray();
        var snapshot = Compile(routes);

        for (var i = 0; i < 5000; i += 37)
        {
            Assert.That(snapshot.MatchId($"HOST{i}.example.test", $"/svc{i}/x"), Is.EqualTo($"r{i}"));
        }

        Assert.That(snapshot.MatchId("host1.example.test", "/svc2/x"), Is.Null);
    }

    [Test]
    public void TryMatch_AllocatesNothing()
    {
        var snapshot = Compile(
            Route("any", "/static/"),
            Route("wild", "/", hosts: ["*.example.test"]),
            Route("exact", "/api/", hosts: ["api.example.test"], methods: ["GET", "PURGE"]));
        var host = Encoding.ASCII.GetBytes("a.b.API.example.test:8443");
        var path = Encoding.ASCII.GetBytes("/api/users");
        var method = Encoding.ASCII.GetBytes("PURGE");
        // The runtime itself may allocate once on this thread while it tiers the code up (call counting, OSR):
        // measure the same loop a few times and require one run with no allocation at all.
        long least = long.MaxValue;
        for (var run = 0; run < 4; run++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < 1000; i++)
            {
                snapshot.TryMatch(host, path, method, out _);
                snapshot.TryMatch("api.example.test"u8, "/api/x"u8, "GET"u8, out _);
                snapshot.TryMatch("nowhere.test"u8, "/nothing"u8, "GET"u8, out _);
            }

            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        Assert.That(least, Is.Zero);
    }
}
