using System.Text;
using NUnit.Framework;
using Router.Core.Configuration;

namespace Router.Tests.Core.Configuration;

/// <summary>Config documents and assertions shared by the configuration tests.</summary>
internal static class ConfigDocuments
{
    /// <summary>The sample from ARCHITECTURE.md.</summary>
    public const string ArchitectureSample = """
        {
          "routes": [
            { "id": "api", "match": { "hosts": ["api.example.test"], "pathPrefix": "/api/", "methods": ["GET", "POST"] },
              "cluster": "api", "fallbackCluster": "static", "timeoutMs": 30000 }
          ],
          "clusters": [
            { "id": "api",
              "destinations": [ { "address": "127.0.0.1:9001" }, { "address": "127.0.0.1:9002" } ],
              "loadBalancing": "roundRobin",
              "healthCheck": { "path": "/healthz", "intervalMs": 2000, "timeoutMs": 1000, "unhealthyThreshold": 3, "healthyThreshold": 2 },
              "circuitBreaker": { "consecutiveFailures": 5, "breakMs": 10000 },
              "maxConcurrentRequests": 1024 },
            { "id": "static", "destinations": [ { "address": "127.0.0.1:9100" } ] }
          ],
          "maxConcurrentRequests": 10000
        }
        """;

    public const string Route = """{ "id": "r", "match": { "pathPrefix": "/" }, "cluster": "c" }""";

    public const string Cluster = """{ "id": "c", "destinations": [ { "address": "127.0.0.1:9001" } ] }""";

    /// <summary>A document with the given routes and clusters (JSON array contents) and extra root fields.</summary>
    public static string Document(string routes = Route, string clusters = Cluster, string extra = "") =>
        $$"""{ "routes": [ {{routes}} ], "clusters": [ {{clusters}} ]{{(extra.Length > 0 ? ", " + extra : "")}} }""";

    public static ConfigLoadResult Load(string json) => ConfigLoader.Load(Encoding.UTF8.GetBytes(json));

    /// <summary>Asserts the document has exactly one error, at <paramref name="path"/>, with a plain message containing <paramref name="fragment"/>.</summary>
    public static ConfigError AssertSingleError(string json, string path, string fragment)
    {
        ConfigLoadResult result = Load(json);
        Assert.Multiple(() =>
        {
            Assert.That(result.IsValid, Is.False);
            Assert.That(result.Config, Is.Null);
            Assert.That(result.Hash, Is.Empty);
            Assert.That(result.Errors, Has.Count.EqualTo(1), () => "exactly one error expected, got:\n" + string.Join("\n", result.Errors));
        });
        ConfigError error = result.Errors[0];
        Assert.That(error.Path, Is.EqualTo(path));
        Assert.That(error.Message, Does.Contain(fragment));
        AssertPlain(error.Message);
        return error;
    }

    /// <summary>A plain message: one line, no exception or type names, no reader internals.</summary>
    public static void AssertPlain(string message)
    {
        Assert.That(message, Is.Not.Empty);
        string[] internals = ["Exception", "System.", "Router.", "LineNumber", "BytePositionInLine", "Path:", "JsonTypeInfo", "Int32", "\n"];
        foreach (string word in internals)
        {
            Assert.That(message, Does.Not.Contain(word), $"message is not plain: {message}");
        }

        Assert.That(message, Is.EqualTo(message.Trim()));
    }
}
