using NUnit.Framework;
using Router.Core.Configuration;
using static Router.Tests.Core.Configuration.ConfigDocuments;

namespace Router.Tests.Core.Configuration;

/// <summary>Semantic errors: ids, references, fallbacks, addresses, hosts, methods, ranges.</summary>
public sealed class ConfigValidatorTests
{
    private static readonly string[] GetPost = ["GET", "POST"];
    private static readonly string[] WildcardHost = ["*.example.test"];

    private const string Dest = """ "destinations": [ { "address": "127.0.0.1:9001" } ] """;

    private static IEnumerable<TestCaseData> SemanticErrors()
    {
        // Ids and references.
        yield return Case("MissingRouteId", Document(routes: """{ "cluster": "c" }"""), "$.routes[0].id", "needs a non-empty id");
        yield return Case("EmptyClusterId", Document(routes: "", clusters: $$"""{ "id": "", {{Dest}} }"""), "$.clusters[0].id", "needs a non-empty id");
        yield return Case("DuplicateRouteId",
            Document(routes: """{ "id": "r", "cluster": "c" }, { "id": "r", "match": { "pathPrefix": "/b" }, "cluster": "c" }"""),
            "$.routes[1].id", "duplicate route id 'r'; it is already used by $.routes[0]");
        yield return Case("DuplicateClusterId",
            Document(clusters: $$"""{ "id": "c", {{Dest}} }, { "id": "c", {{Dest}} }"""),
            "$.clusters[1].id", "duplicate cluster id 'c'");
        yield return Case("RouteWithoutCluster", Document(routes: """{ "id": "r" }"""), "$.routes[0].cluster", "is required");
        yield return Case("RouteNamingUnknownCluster", Document(routes: """{ "id": "r", "cluster": "nope" }"""), "$.routes[0].cluster", "unknown cluster 'nope'");
        yield return Case("RouteNamingUnknownFallback",
            Document(routes: """{ "id": "r", "cluster": "c", "fallbackCluster": "nope" }"""),
            "$.routes[0].fallbackCluster", "unknown cluster 'nope'");
        yield return Case("RouteFallbackEqualToItsCluster",
            Document(routes: """{ "id": "r", "cluster": "c", "fallbackCluster": "c" }"""),
            "$.routes[0].fallbackCluster", "is the route's own cluster");
        yield return Case("RouteFallbackChainLoopingBackToItsCluster",
            Document(routes: """{ "id": "r", "cluster": "c", "fallbackCluster": "d" }""",
                     clusters: $$"""{ "id": "c", {{Dest}} }, { "id": "d", {{Dest}}, "fallbackCluster": "c" }"""),
            "$.routes[0].fallbackCluster", "loops back to the route's own cluster: c -> d -> c");
        yield return Case("ClusterFallbackLoop",
            Document(clusters: $$"""{ "id": "c", {{Dest}}, "fallbackCluster": "d" }, { "id": "d", {{Dest}}, "fallbackCluster": "e" }, { "id": "e", {{Dest}}, "fallbackCluster": "c" }"""),
            "$.clusters[0].fallbackCluster", "the fallback chain loops: c -> d -> e -> c");
        yield return Case("ClusterFallbackToItself",
            Document(clusters: $$"""{ "id": "c", {{Dest}}, "fallbackCluster": "c" }"""),
            "$.clusters[0].fallbackCluster", "is the cluster itself");
        yield return Case("ClusterNamingUnknownFallback",
            Document(clusters: $$"""{ "id": "c", {{Dest}}, "fallbackCluster": "x" }"""),
            "$.clusters[0].fallbackCluster", "unknown cluster 'x'");

        // Destinations.
        yield return Case("ClusterWithoutDestinations", Document(clusters: """{ "id": "c" }"""), "$.clusters[0].destinations", "at least one destination");
        yield return Case("DestinationWithoutPort", Destination("127.0.0.1"), "$.clusters[0].destinations[0].address", "has no port");
        yield return Case("DestinationWithPortZero", Destination("127.0.0.1:0"), "$.clusters[0].destinations[0].address", "port 0 is out of range");
        yield return Case("DestinationWithPortTooLarge", Destination("127.0.0.1:65536"), "$.clusters[0].destinations[0].address", "port 65536 is out of range");
        yield return Case("DestinationWithNonNumericPort", Destination("127.0.0.1:http"), "$.clusters[0].destinations[0].address", "not a valid port");
        yield return Case("DestinationWithBadIPv4", Destination("256.1.1.1:80"), "$.clusters[0].destinations[0].address", "not a valid IPv4 address");
        yield return Case("DestinationWithUnbracketedIPv6", Destination("::1:80"), "$.clusters[0].destinations[0].address", "put it in brackets");
        yield return Case("DestinationWithBadIPv6", Destination("[::g]:80"), "$.clusters[0].destinations[0].address", "not a valid IPv6 address");
        yield return Case("DestinationWithBadHostName", Destination("my_host:80"), "$.clusters[0].destinations[0].address", "not a valid host name");
        yield return Case("DuplicateDestination",
            Document(clusters: """{ "id": "c", "destinations": [ { "address": "app.internal:80" }, { "address": "APP.internal:80" } ] }"""),
            "$.clusters[0].destinations[1].address", "duplicate destination 'APP.internal:80'; it is already listed at $.clusters[0].destinations[0]");

        // Match.
        yield return Case("PathPrefixWithoutSlash", Match("""{ "pathPrefix": "api" }"""), "$.routes[0].match.pathPrefix", "must start with '/'");
        yield return Case("PathPrefixWithQuery", Match("""{ "pathPrefix": "/api?x=1" }"""), "$.routes[0].match.pathPrefix", "must not contain '?'");
        yield return Case("HostWithPort", Match("""{ "hosts": ["a.example:8080"] }"""), "$.routes[0].match.hosts[0]", "must not contain a port");
        yield return Case("HostWithInnerWildcard", Match("""{ "hosts": ["a.*.example"] }"""), "$.routes[0].match.hosts[0]", "misplaced '*'");
        yield return Case("HostWithBareWildcard", Match("""{ "hosts": ["*"] }"""), "$.routes[0].match.hosts[0]", "misplaced '*'");
        yield return Case("HostWithEmptyLabel", Match("""{ "hosts": ["a..example"] }"""), "$.routes[0].match.hosts[0]", "empty label");
        yield return Case("HostWithBadCharacter", Match("""{ "hosts": ["ok.example", "a_b.example"] }"""), "$.routes[0].match.hosts[1]", "'_' is not allowed");
        yield return Case("EmptyHost", Match("""{ "hosts": [""] }"""), "$.routes[0].match.hosts[0]", "must not be empty");
        yield return Case("DuplicateHost", Match("""{ "hosts": ["a.example", "A.example"] }"""), "$.routes[0].match.hosts[1]", "listed twice");
        yield return Case("InvalidMethod", Match("""{ "methods": ["GET", "GE T"] }"""), "$.routes[0].match.methods[1]", "not a valid HTTP method");
        yield return Case("DuplicateMethod", Match("""{ "methods": ["GET", "get"] }"""), "$.routes[0].match.methods[1]", "listed twice");
        yield return Case("TwoRoutesWithIdenticalMatch",
            Document(routes: """
                { "id": "a", "match": { "hosts": ["A.example"], "pathPrefix": "/x", "methods": ["GET", "post"] }, "cluster": "c" },
                { "id": "b", "match": { "hosts": ["a.EXAMPLE"], "pathPrefix": "/x", "methods": ["POST", "get"] }, "cluster": "c" }
                """),
            "$.routes[1].match", "route 'b' matches host 'a.example', path prefix '/x' and methods GET,POST exactly like route 'a' at $.routes[0]");
        yield return Case("TwoCatchAllRoutes",
            Document(routes: """{ "id": "a", "cluster": "c" }, { "id": "b", "cluster": "c" }"""),
            "$.routes[1].match", "matches any host, path prefix '/' and any method exactly like route 'a'");

        // Ranges.
        yield return Case("RouteTimeoutZero", Document(routes: """{ "id": "r", "cluster": "c", "timeoutMs": 0 }"""), "$.routes[0].timeoutMs", "greater than 0 and at most 86400000 ms (1 day), got 0");
        yield return Case("ConnectTimeoutOverOneDay", ClusterWith("\"connectTimeoutMs\": 86400001"), "$.clusters[0].connectTimeoutMs", "at most 86400000 ms");
        yield return Case("NegativeIdleTimeout", ClusterWith("\"idleTimeoutMs\": -1"), "$.clusters[0].idleTimeoutMs", "got -1");
        yield return Case("HealthCheckThresholdZero", ClusterWith("\"healthCheck\": { \"unhealthyThreshold\": 0 }"), "$.clusters[0].healthCheck.unhealthyThreshold", "must be at least 1, got 0");
        yield return Case("HealthCheckPathWithoutSlash", ClusterWith("\"healthCheck\": { \"path\": \"healthz\" }"), "$.clusters[0].healthCheck.path", "must start with '/'");
        yield return Case("HealthCheckStatusOutOfRange", ClusterWith("\"healthCheck\": { \"expectedStatusMin\": 99 }"), "$.clusters[0].healthCheck.expectedStatusMin", "from 100 to 599");
        yield return Case("HealthCheckStatusRangeReversed",
            ClusterWith("\"healthCheck\": { \"expectedStatusMin\": 300, \"expectedStatusMax\": 299 }"),
            "$.clusters[0].healthCheck.expectedStatusMax", "must not be below expectedStatusMin (300)");
        yield return Case("BreakerRatioAboveOne", ClusterWith("\"circuitBreaker\": { \"failureRatio\": 1.5 }"), "$.clusters[0].circuitBreaker.failureRatio", "greater than 0 and at most 1");
        yield return Case("BreakerRatioZero", ClusterWith("\"circuitBreaker\": { \"failureRatio\": 0 }"), "$.clusters[0].circuitBreaker.failureRatio", "got 0");
        yield return Case("BreakerHalfOpenTrialsZero", ClusterWith("\"circuitBreaker\": { \"halfOpenTrials\": 0 }"), "$.clusters[0].circuitBreaker.halfOpenTrials", "from 1 to 1048575, got 0");
        yield return Case("BreakerHalfOpenTrialsAboveWhatIsCounted", ClusterWith("\"circuitBreaker\": { \"halfOpenTrials\": 2000000 }"),
            "$.clusters[0].circuitBreaker.halfOpenTrials", "from 1 to 1048575, got 2000000");
        yield return Case("BreakerMinimumRequestsAboveWhatIsCounted", ClusterWith("\"circuitBreaker\": { \"failureRatio\": 0.5, \"minimumRequests\": 10485751 }"),
            "$.clusters[0].circuitBreaker.minimumRequests", "from 1 to 10485750, got 10485751");
        yield return Case("PassiveHealthPercentOver100", ClusterWith("\"passiveHealth\": { \"maxEjectionPercent\": 101 }"), "$.clusters[0].passiveHealth.maxEjectionPercent", "from 0 to 100, got 101");
        yield return Case("RetryBudgetNegative", ClusterWith("\"retry\": { \"budgetPercent\": -5 }"), "$.clusters[0].retry.budgetPercent", "from 0 to 100");
        yield return Case("RetryAttemptsZero", ClusterWith("\"retry\": { \"maxAttempts\": 0 }"), "$.clusters[0].retry.maxAttempts", "from 1 to 10");
        yield return Case("ClusterConcurrencyZero", ClusterWith("\"maxConcurrentRequests\": 0"), "$.clusters[0].maxConcurrentRequests", "at least 1");
        yield return Case("ConnectionsPerDestinationZero", ClusterWith("\"maxConnectionsPerDestination\": 0"), "$.clusters[0].maxConnectionsPerDestination", "at least 1");
        yield return Case("GlobalConcurrencyZero", Document(extra: "\"maxConcurrentRequests\": 0"), "$.maxConcurrentRequests", "at least 1, got 0");
        yield return Case("UnknownLoadBalancing", ClusterWith("\"loadBalancing\": \"random\""), "$.clusters[0].loadBalancing", "expected one of roundRobin, leastRequests, powerOfTwoChoices");

        // Upstream TLS.
        yield return Case("UpstreamClientCertWithoutKey", ClusterWith("\"tls\": { \"clientCertFile\": \"c.pem\" }"), "$.clusters[0].tls.clientKeyFile", "required when clientCertFile is given");
        yield return Case("UpstreamBadServerName", ClusterWith("\"tls\": { \"serverName\": \"bad name\" }"), "$.clusters[0].tls.serverName", "not a valid host name");
        yield return Case("UpstreamEmptyCaFile", ClusterWith("\"tls\": { \"caFile\": \"\" }"), "$.clusters[0].tls.caFile", "must not be empty");

        // Listeners.
        yield return Case("ListenerWithHostName", Listeners("""{ "address": "localhost:8080" }"""), "$.listeners[0].address", "not an IP address");
        yield return Case("ListenerWithoutPort", Listeners("""{ "address": "0.0.0.0" }"""), "$.listeners[0].address", "has no port");
        yield return Case("DuplicateListener", Listeners("""{ "address": "[::]:8080" }, { "address": "[0::0]:8080" }"""), "$.listeners[1].address", "duplicate listener address");
        yield return Case("TlsListenerWithoutCertificates", Listeners("""{ "address": "0.0.0.0:443", "tls": { } }"""), "$.listeners[0].tls.certificates", "at least one certificate");
        yield return Case("TlsCertificateWithoutKey",
            Listeners("""{ "address": "0.0.0.0:443", "tls": { "certificates": [ { "certFile": "a.pem" } ] } }"""),
            "$.listeners[0].tls.certificates[0].keyFile", "is required");
        yield return Case("TlsCertificateWithBadHost",
            Listeners("""{ "address": "0.0.0.0:443", "tls": { "certificates": [ { "certFile": "a.pem", "keyFile": "a.key", "hosts": ["x:443"] } ] } }"""),
            "$.listeners[0].tls.certificates[0].hosts[0]", "must not contain a port");
        yield return Case("TlsDefaultCertificateOutOfRange",
            Listeners("""{ "address": "0.0.0.0:443", "tls": { "certificates": [ { "certFile": "a.pem", "keyFile": "a.key" } ], "defaultCertificate": 1 } }"""),
            "$.listeners[0].tls.defaultCertificate", "from 0 to 0, got 1");
    }

    private static TestCaseData Case(string name, string json, string path, string fragment) =>
        new TestCaseData(json, path, fragment).SetName($"Load_With{name}_ReportsOnePlainErrorAtItsPath");

    private static string Destination(string address) =>
        Document(clusters: $$"""{ "id": "c", "destinations": [ { "address": "{{address}}" } ] }""");

    private static string Match(string match) => Document(routes: $$"""{ "id": "r", "match": {{match}}, "cluster": "c" }""");

    private static string ClusterWith(string fields) => Document(clusters: $$"""{ "id": "c", {{Dest}}, {{fields}} }""");

    private static string Listeners(string listeners) => Document(extra: $"\"listeners\": [ {listeners} ]");

    [TestCaseSource(nameof(SemanticErrors))]
    public void Load_WithSemanticError_ReportsOnePlainErrorAtItsPath(string json, string path, string fragment) =>
        AssertSingleError(json, path, fragment);

    [Test]
    public void Load_WithArchitectureSample_Loads()
    {
        ConfigLoadResult result = Load(ArchitectureSample);

        Assert.That(result.Errors, Is.Empty);
        Assert.That(result.IsValid, Is.True);
        Assert.That(result.Hash, Does.Match("^[0-9a-f]{64}$"));
        RouterConfig config = result.Config!;
        Assert.That(config.Routes[0].Match.Methods, Is.EqualTo(GetPost));
        Assert.That(config.Routes[0].FallbackCluster, Is.EqualTo("static"));
        Assert.That(config.Clusters[0].HealthCheck!.IntervalMs, Is.EqualTo(2000));
        Assert.That(config.Clusters[0].HealthCheck!.ExpectedStatusMax, Is.EqualTo(399));
        Assert.That(config.Clusters[1].ConnectTimeoutMs, Is.EqualTo(5000));
        Assert.That(config.MaxConcurrentRequests, Is.EqualTo(10000));
    }

    [Test]
    public void Load_WithEveryNewField_LoadsThemWithTheirValues()
    {
        string json = """
            { "routes": [ { "id": "r", "match": { "hosts": ["*.example.test", "example.test", "10.0.0.1"] }, "cluster": "c" } ],
              "clusters": [
                { "id": "c", "destinations": [ { "address": "[::1]:8443" }, { "address": "app.internal:8443" } ],
                  "loadBalancing": "powerOfTwoChoices", "fallbackCluster": "d", "panicMode": true,
                  "healthCheck": { "expectedStatusMin": 200, "expectedStatusMax": 204 },
                  "circuitBreaker": { "failureRatio": 0.5, "minimumRequests": 10, "windowMs": 5000, "halfOpenTrials": 2 },
                  "passiveHealth": { "consecutiveFailures": 3, "ejectionMs": 1000, "maxEjectionPercent": 100 },
                  "retry": { "enabled": false, "maxAttempts": 3, "budgetPercent": 0, "minConcurrent": 0 },
                  "tls": { "serverName": "app.internal", "caFile": "ca.pem", "clientCertFile": "c.pem", "clientKeyFile": "c.key" } },
                { "id": "d", "destinations": [ { "address": "127.0.0.1:80" } ] } ],
              "listeners": [ { "address": "0.0.0.0:0" }, { "address": "127.0.0.1:0" },
                             { "address": "[::]:443", "tls": { "certificates": [ { "certFile": "a.pem", "keyFile": "a.key", "hosts": ["*.example.test"] } ], "defaultCertificate": 0 } } ] }
            """;

        ConfigLoadResult result = Load(json);

        Assert.That(result.Errors, Is.Empty);
        ClusterConfig cluster = result.Config!.Clusters[0];
        Assert.Multiple(() =>
        {
            Assert.That(cluster.FallbackCluster, Is.EqualTo("d"));
            Assert.That(cluster.PanicMode, Is.True);
            Assert.That(cluster.HealthCheck!.ExpectedStatusMax, Is.EqualTo(204));
            Assert.That(cluster.CircuitBreaker!.FailureRatio, Is.EqualTo(0.5));
            Assert.That(cluster.CircuitBreaker!.HalfOpenTrials, Is.EqualTo(2));
            Assert.That(cluster.PassiveHealth!.MaxEjectionPercent, Is.EqualTo(100));
            Assert.That(cluster.Retry!.Enabled, Is.False);
            Assert.That(cluster.Tls!.Enabled, Is.True);
            Assert.That(cluster.Tls!.ClientKeyFile, Is.EqualTo("c.key"));
            Assert.That(result.Config!.Listeners[2].Tls!.Certificates[0].Hosts, Is.EqualTo(WildcardHost));
        });
    }

    [Test]
    public void NewRecords_WhenLeftOut_HaveTheirDocumentedDefaults()
    {
        Assert.Multiple(() =>
        {
            Assert.That(new HealthCheckConfig() is { ExpectedStatusMin: 200, ExpectedStatusMax: 399 }, Is.True);
            Assert.That(new CircuitBreakerConfig() is { FailureRatio: null, MinimumRequests: 20, WindowMs: 10000, HalfOpenTrials: 1 }, Is.True);
            Assert.That(new PassiveHealthConfig() is { ConsecutiveFailures: 5, EjectionMs: 30000, MaxEjectionPercent: 50 }, Is.True);
            Assert.That(new RetryConfig() is { Enabled: true, MaxAttempts: 2, BudgetPercent: 20, MinConcurrent: 3 }, Is.True);
            Assert.That(new UpstreamTlsConfig() is { Enabled: true, ServerName: null, CaFile: null }, Is.True);
            Assert.That(new ClusterConfig() is { PanicMode: false, FallbackCluster: null, PassiveHealth: null, Retry: null, Tls: null }, Is.True);
            Assert.That(new ListenerConfig().Tls, Is.Null);
        });
    }

    [Test]
    public void Load_WithManyErrors_ReportsAllOfThemInDocumentOrder()
    {
        // Clusters come before routes in this document, so their errors come first. A field left out (routes[0].id,
        // routes[2].match) sorts at the end of the object it is missing from.
        string json = """
            {
              "clusters": [
                { "id": "c", "destinations": [ { "address": "127.0.0.1" }, { "address": "127.0.0.1:70000" } ], "loadBalancing": "random" },
                { "id": "c", "destinations": [], "connectTimeoutMs": "fast" },
                { "id": "d", "destinations": [ { "address": "127.0.0.1:1" } ], "fallbackCluster": "d", "colour": "red" }
              ],
              "routes": [
                { "match": { "pathPrefix": "api", "hosts": ["a:80"], "methods": ["G T"] }, "cluster": "x" },
                { "id": "b", "cluster": "c", "fallbackCluster": "c", "timeoutMs": 0 },
                { "id": "b", "cluster": "c", "timeoutMs": 1 }
              ],
              "listeners": [ { "address": "nowhere" } ],
              "maxConcurrentRequests": -1
            }
            """;

        ConfigLoadResult result = Load(json);

        string[] expectedPaths =
        [
            "$.clusters[0].destinations[0].address",
            "$.clusters[0].destinations[1].address",
            "$.clusters[0].loadBalancing",
            "$.clusters[1].id",
            "$.clusters[1].destinations",
            "$.clusters[1].connectTimeoutMs",
            "$.clusters[2].fallbackCluster",
            "$.clusters[2].colour",
            "$.routes[0].match.pathPrefix",
            "$.routes[0].match.hosts[0]",
            "$.routes[0].match.methods[0]",
            "$.routes[0].cluster",
            "$.routes[0].id",
            "$.routes[1].fallbackCluster",
            "$.routes[1].timeoutMs",
            "$.routes[2].id",
            "$.routes[2].match",
            "$.listeners[0].address",
            "$.maxConcurrentRequests",
        ];
        Assert.That(result.Errors.Select(e => e.Path), Is.EqualTo(expectedPaths));
        foreach (ConfigError error in result.Errors)
        {
            AssertPlain(error.Message);
        }
    }

    [Test]
    public void Validate_WithValidConfigBuiltInCode_IsValidWithTheSameHashAsItsJson()
    {
        var config = new RouterConfig
        {
            Routes = [new RouteConfig { Id = "r", Cluster = "c", Match = new RouteMatch { PathPrefix = "/api/" } }],
            Clusters = [new ClusterConfig { Id = "c", Destinations = [new DestinationConfig { Address = "127.0.0.1:80" }] }],
        };

        ConfigLoadResult result = ConfigLoader.Validate(config);

        Assert.That(result.Errors, Is.Empty);
        Assert.That(result.Config, Is.SameAs(config));
        Assert.That(result.Hash, Is.EqualTo(ConfigLoader.Load(ConfigLoader.Serialize(config)).Hash));
    }

    [Test]
    public void Validate_WithInvalidConfigBuiltInCode_ReportsEveryErrorWithItsPath()
    {
        var config = new RouterConfig
        {
            Routes = [new RouteConfig { Id = "", Cluster = "missing", Match = null! }],
            Clusters = [new ClusterConfig { Id = "c", Destinations = null!, IdleTimeoutMs = 0 }],
            Listeners = [null!],
        };

        ConfigLoadResult result = ConfigLoader.Validate(config);

        Assert.That(result.IsValid, Is.False);
        Assert.That(result.Hash, Is.Empty);
        string[] expectedPaths =
        [
            "$.routes[0].id",
            "$.routes[0].match",
            "$.routes[0].cluster",
            "$.clusters[0].destinations",
            "$.clusters[0].idleTimeoutMs",
            "$.listeners[0]",
        ];
        Assert.That(result.Errors.Select(e => e.Path), Is.EqualTo(expectedPaths));
    }
}
