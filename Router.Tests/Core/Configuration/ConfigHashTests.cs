using System.Text;
using NUnit.Framework;
using Router.Core.Configuration;
using static Router.Tests.Core.Configuration.ConfigDocuments;

namespace Router.Tests.Core.Configuration;

/// <summary>The content hash and the canonical form it is computed from.</summary>
public sealed class ConfigHashTests
{
    [Test]
    public void Hash_IgnoresWhitespaceCommentsAndFieldOrder()
    {
        const string compact = """{"routes":[{"id":"r","cluster":"c","match":{"pathPrefix":"/a","methods":["GET"]}}],"clusters":[{"id":"c","destinations":[{"address":"127.0.0.1:80"}]}]}""";
        const string reordered = """
            // same content, different layout
            {
              "clusters": [ { "destinations": [ { "address": "127.0.0.1:80" } ], "id": "c" } ],
              "routes":   [ { "match": { "methods": [ "GET" ], "pathPrefix": "/a" }, "cluster": "c", "id": "r" }, ]
            }
            """;

        string first = Load(compact).Hash;
        string second = Load(reordered).Hash;

        Assert.That(first, Does.Match("^[0-9a-f]{64}$"));
        Assert.That(second, Is.EqualTo(first));
    }

    [Test]
    public void Hash_IsTheSameWhetherDefaultsAreSpelledOutOrLeftOut()
    {
        string spelledOut = Document(clusters: """
            { "id": "c", "destinations": [ { "address": "127.0.0.1:9001" } ], "loadBalancing": "roundRobin",
              "connectTimeoutMs": 5000, "responseTimeoutMs": 30000, "idleTimeoutMs": 60000, "panicMode": false,
              "healthCheck": { "path": "/healthz", "expectedStatusMin": 200 } }
            """);
        string leftOut = Document(clusters: """{ "id": "c", "destinations": [ { "address": "127.0.0.1:9001" } ], "healthCheck": {} }""");

        Assert.That(Load(leftOut).Hash, Is.EqualTo(Load(spelledOut).Hash));
    }

    [Test]
    public void Hash_DiffersWhenContentDiffers()
    {
        string baseline = Load(Document()).Hash;
        string otherPort = Load(Document(clusters: """{ "id": "c", "destinations": [ { "address": "127.0.0.1:9002" } ] }""")).Hash;
        string otherTimeout = Load(Document(clusters: """{ "id": "c", "destinations": [ { "address": "127.0.0.1:9001" } ], "idleTimeoutMs": 1 }""")).Hash;

        Assert.That(new[] { baseline, otherPort, otherTimeout }, Is.Unique);
    }

    [Test]
    public void Hash_DiffersWhenOnlyTheOrderOfRoutesDiffers()
    {
        // Array order is content: it is kept in the snapshot and shown back to operators.
        const string a = """{ "id": "a", "match": { "pathPrefix": "/a" }, "cluster": "c" }""";
        const string b = """{ "id": "b", "match": { "pathPrefix": "/b" }, "cluster": "c" }""";

        Assert.That(Load(Document(routes: a + "," + b)).Hash, Is.Not.EqualTo(Load(Document(routes: b + "," + a)).Hash));
    }

    [Test]
    public void Load_WithOnlyRequiredFields_GivesEveryDocumentedDefault()
    {
        // The source generator would otherwise leave init-only defaults at 0/null (dotnet/runtime#84484).
        string json = Document(clusters: """
            { "id": "c", "destinations": [ { "address": "127.0.0.1:9001" } ],
              "healthCheck": {}, "circuitBreaker": {}, "passiveHealth": {}, "retry": {}, "tls": {} }
            """);
        var expected = new ClusterConfig
        {
            Id = "c",
            Destinations = [new DestinationConfig { Address = "127.0.0.1:9001" }],
            HealthCheck = new HealthCheckConfig(),
            CircuitBreaker = new CircuitBreakerConfig(),
            PassiveHealth = new PassiveHealthConfig(),
            Retry = new RetryConfig(),
            Tls = new UpstreamTlsConfig(),
        };

        ConfigLoadResult result = Load(json);

        Assert.That(result.Errors, Is.Empty);
        ClusterConfig actual = result.Config!.Clusters[0];
        Assert.That(actual with { Destinations = expected.Destinations }, Is.EqualTo(expected));
        Assert.That(result.Config.Routes[0].Match.PathPrefix, Is.EqualTo("/"));
    }

    [Test]
    public void Serialize_ThenLoad_RoundTripsToTheSameHash()
    {
        ConfigLoadResult first = Load(ArchitectureSample);

        byte[] canonical = ConfigLoader.Serialize(first.Config!);
        ConfigLoadResult second = ConfigLoader.Load(canonical);

        Assert.That(second.Errors, Is.Empty);
        Assert.That(second.Hash, Is.EqualTo(first.Hash));
        Assert.That(ConfigLoader.ComputeHash(second.Config!), Is.EqualTo(first.Hash));
        Assert.That(Encoding.UTF8.GetString(canonical), Does.Not.Contain("\n").And.Contain("\"pathPrefix\":\"/api/\""));
    }
}
