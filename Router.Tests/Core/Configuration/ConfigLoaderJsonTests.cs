using System.Text;
using NUnit.Framework;
using Router.Core.Configuration;
using static Router.Tests.Core.Configuration.ConfigDocuments;

namespace Router.Tests.Core.Configuration;

/// <summary>JSON-level errors: malformed documents, unknown fields, wrong types.</summary>
public sealed class ConfigLoaderJsonTests
{
    private static IEnumerable<TestCaseData> JsonErrors()
    {
        yield return Case("EmptyDocument", "", "$", "empty");
        yield return Case("WhitespaceOnlyDocument", " \r\n\t ", "$", "empty");
        yield return Case("CommentOnlyDocument", "// nothing here\n/* still nothing */", "$", "empty");
        yield return Case("GarbageAfterComment", "// header\n nonsense", "$", "line 2, column 3: the document is not valid JSON");
        yield return Case("UnterminatedComment", "/* never closed", "$", "line 1, column 1: the document is not valid JSON");
        yield return Case("RootIsArray", "[]", "$", "must be a JSON object");
        yield return Case("RootIsString", "\"routes\"", "$", "must be a JSON object");
        yield return Case("UnknownRootField", Document(extra: "\"rotes\": []"), "$.rotes", "unknown field 'rotes'; did you mean 'routes'?");
        yield return Case("UnknownNestedField",
            Document(routes: """{ "id": "r", "match": { "pathPrefx": "/" }, "cluster": "c" }"""),
            "$.routes[0].match.pathPrefx", "did you mean 'pathPrefix'?");
        yield return Case("FieldWithWrongCase",
            Document(routes: """{ "id": "r", "Cluster": "c", "cluster": "c" }"""),
            "$.routes[0].Cluster", "did you mean 'cluster'?");
        yield return Case("UnknownFieldWithOddName", Document(extra: "\"my field\": 1"), "$['my field']", "unknown field 'my field'");
        yield return Case("StringExpected",
            Document(routes: """{ "id": 5, "cluster": "c" }"""),
            "$.routes[0].id", "expected a string but found a number");
        yield return Case("NumberExpected",
            Document(routes: """{ "id": "r", "cluster": "c", "timeoutMs": "30s" }"""),
            "$.routes[0].timeoutMs", "expected a whole number but found a string");
        yield return Case("WholeNumberExpected",
            Document(routes: """{ "id": "r", "cluster": "c", "timeoutMs": 1.5 }"""),
            "$.routes[0].timeoutMs", "expected a whole number from");
        yield return Case("NumberTooLargeForAnInteger",
            Document(extra: "\"maxConcurrentRequests\": 99999999999"),
            "$.maxConcurrentRequests", "found 99999999999");
        yield return Case("RatioExpectsNumber",
            Document(clusters: """{ "id": "c", "destinations": [ { "address": "127.0.0.1:1" } ], "circuitBreaker": { "failureRatio": "half" } }"""),
            "$.clusters[0].circuitBreaker.failureRatio", "expected a number but found a string");
        yield return Case("ArrayExpected",
            Document(routes: """{ "id": "r", "match": { "hosts": "a.example" }, "cluster": "c" }"""),
            "$.routes[0].match.hosts", "expected an array but found a string");
        yield return Case("ObjectExpected",
            Document(routes: """{ "id": "r", "match": [], "cluster": "c" }"""),
            "$.routes[0].match", "expected an object but found an array");
        yield return Case("BooleanExpected",
            Document(clusters: """{ "id": "c", "destinations": [ { "address": "127.0.0.1:1" } ], "panicMode": "yes" }"""),
            "$.clusters[0].panicMode", "expected true or false but found a string");
        yield return Case("NullForRequiredField",
            Document(routes: """{ "id": null, "cluster": "c" }"""),
            "$.routes[0].id", "must not be null");
        yield return Case("NullForList",
            Document(extra: "\"listeners\": null"),
            "$.listeners", "must not be null");
        yield return Case("ArrayElementOfWrongType", "{ \"routes\": [ 5 ], \"clusters\": [] }", "$.routes[0]", "expected an object but found a number");
        yield return Case("StringElementOfWrongType",
            Document(routes: """{ "id": "r", "match": { "methods": ["GET", 7] }, "cluster": "c" }"""),
            "$.routes[0].match.methods[1]", "expected a string but found a number");
        yield return Case("DuplicateProperty",
            Document(routes: """{ "id": "r", "id": "r2", "cluster": "c" }"""),
            "$.routes[0].id", "appears more than once");
    }

    private static TestCaseData Case(string name, string json, string path, string fragment) =>
        new TestCaseData(json, path, fragment).SetName($"Load_With{name}_ReportsOnePlainErrorAtItsPath");

    [TestCaseSource(nameof(JsonErrors))]
    public void Load_WithJsonError_ReportsOnePlainErrorAtItsPath(string json, string path, string fragment) =>
        AssertSingleError(json, path, fragment);

    [Test]
    public void Load_WithTruncatedJson_ReportsLineAndColumn()
    {
        const string json = "{\n  \"routes\": [\n    { \"id\": \"a\", \"cluster\": ";

        ConfigError error = AssertSingleError(json, "$", "not valid JSON");

        Assert.That(error.Message, Is.EqualTo("line 3, column 29: the document is not valid JSON: the document ends before every object and array is closed"));
    }

    [Test]
    public void Load_WithBadTokenMidLine_ReportsItsLineAndCharacterColumn()
    {
        // "é" is two bytes in UTF-8 but one character; the column counts characters.
        const string json = "{\n  \"routes\": [],\n  \"clusters\": [], \"é\": x }";

        ConfigError error = AssertSingleError(json, "$", "not valid JSON");

        Assert.That(error.Message, Does.StartWith("line 3, column 24:"));
    }

    [Test]
    public void Load_WithTrailingGarbage_ReportsMalformedJson() =>
        AssertSingleError("{ \"routes\": [], \"clusters\": [] } }", "$", "line 1, column");

    [Test]
    public void Load_WithCommentsTrailingCommasAndByteOrderMark_Loads()
    {
        byte[] preamble = Encoding.UTF8.GetPreamble();
        byte[] body = Encoding.UTF8.GetBytes("""
            // routes first
            { "routes": [ { "id": "r", "cluster": "c", }, ], /* then clusters */
              "clusters": [ { "id": "c", "destinations": [ { "address": "127.0.0.1:80" } ] } ] }
            """);

        ConfigLoadResult result = ConfigLoader.Load([.. preamble, .. body]);

        Assert.That(result.Errors, Is.Empty);
        Assert.That(result.IsValid, Is.True);
    }

    [Test]
    public void Load_WithUnknownFieldsEverywhere_ReportsEachOfThem()
    {
        string json = """
            { "routes": [ { "id": "r", "cluster": "c", "extra1": 1, "match": { "extra2": 2 } } ],
              "clusters": [ { "id": "c", "destinations": [ { "address": "127.0.0.1:80", "weight": 3 } ],
                              "healthCheck": { "extra3": true }, "circuitBreaker": { "extra4": null } } ],
              "listeners": [ { "address": "127.0.0.1:8080", "tls": { "certificates": [ { "certFile": "a", "keyFile": "b", "extra5": [] } ] } } ],
              "extra6": {} }
            """;

        ConfigLoadResult result = Load(json);

        string[] expectedPaths =
        [
            "$.routes[0].extra1",
            "$.routes[0].match.extra2",
            "$.clusters[0].destinations[0].weight",
            "$.clusters[0].healthCheck.extra3",
            "$.clusters[0].circuitBreaker.extra4",
            "$.listeners[0].tls.certificates[0].extra5",
            "$.extra6",
        ];
        Assert.That(result.Errors.Select(e => e.Path), Is.EqualTo(expectedPaths));
    }

    [Test]
    public void LoadFile_WithMissingFile_ReportsOneErrorNamingTheFile()
    {
        string path = Path.Combine(Path.GetTempPath(), "router-config-missing-" + Guid.NewGuid().ToString("N") + ".json");

        ConfigLoadResult result = ConfigLoader.LoadFile(path);

        Assert.That(result.IsValid, Is.False);
        Assert.That(result.Errors, Has.Count.EqualTo(1));
        Assert.That(result.Errors[0].Path, Is.EqualTo("$"));
        Assert.That(result.Errors[0].Message, Does.Contain(path).And.Contain("does not exist"));
        AssertPlain(result.Errors[0].Message);
    }

    [Test]
    public void LoadFile_WithDirectoryInsteadOfFile_ReportsOneErrorNamingIt()
    {
        string path = Path.GetTempPath();

        ConfigLoadResult result = ConfigLoader.LoadFile(path);

        Assert.That(result.Errors, Has.Count.EqualTo(1));
        Assert.That(result.Errors[0].Path, Is.EqualTo("$"));
        Assert.That(result.Errors[0].Message, Does.Contain(path));
    }

    [Test]
    public void LoadFile_WithValidFile_Loads()
    {
        string path = Path.Combine(Path.GetTempPath(), "router-config-" + Guid.NewGuid().ToString("N") + ".json");
        File.WriteAllText(path, ArchitectureSample);
        try
        {
            ConfigLoadResult result = ConfigLoader.LoadFile(path);

            Assert.That(result.Errors, Is.Empty);
            Assert.That(result.Hash, Is.EqualTo(Load(ArchitectureSample).Hash));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
