using NUnit.Framework;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Router.Tests.ControlPlane;

public sealed class AdminApiTests
{
    [TestCase("GET", "/api/config", null)]
    [TestCase("PUT", "/api/config", null)]
    [TestCase("GET", "/api/config/history", null)]
    [TestCase("POST", "/api/config/rollback/1", null)]
    [TestCase("GET", "/api/routers", null)]
    [TestCase("GET", "/api/routers", TestControlPlane.RouterToken)]
    [TestCase("PUT", "/api/config", "wrong")]
    public async Task AdminApi_WithoutTheAdminToken_Returns401(string method, string path, string? token)
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        using var client = new HttpClient { BaseAddress = cp.BaseUri };
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (method == "PUT")
        {
            request.Content = new StringContent(TestConfigs.Valid(9001));
        }

        using var response = await client.SendAsync(request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        using var history = await cp.GetJsonAsync("/api/config/history");
        Assert.That(history.RootElement.GetProperty("versions").GetArrayLength(), Is.Zero, "nothing was stored");
    }

    [Test]
    public async Task GetConfig_OnAnEmptyStore_Returns404()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);

        using var response = await cp.Admin.GetAsync(new Uri("/api/config", UriKind.Relative));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task PutConfig_Valid_BecomesVersion1AndGetReturnsIt()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);

        var (version, hash) = await cp.PutValidConfigAsync(TestConfigs.Valid(9001));
        using var current = await cp.GetJsonAsync("/api/config");

        Assert.Multiple(() =>
        {
            Assert.That(version, Is.EqualTo(1));
            Assert.That(hash, Has.Length.EqualTo(64));
            Assert.That(current.RootElement.GetProperty("version").GetInt64(), Is.EqualTo(1));
            Assert.That(current.RootElement.GetProperty("hash").GetString(), Is.EqualTo(hash));
            Assert.That(current.RootElement.GetProperty("config").GetProperty("clusters")[0].GetProperty("id").GetString(), Is.EqualTo("c"));
        });
    }

    [Test]
    public async Task PutConfig_Invalid_Returns400WithErrorsAndStoresNothing()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        await cp.PutValidConfigAsync(TestConfigs.Valid(9001));

        using var response = await cp.PutConfigAsync(TestConfigs.Invalid);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        using var current = await cp.GetJsonAsync("/api/config");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        var errors = body.RootElement.GetProperty("errors");
        Assert.That(errors.GetArrayLength(), Is.GreaterThanOrEqualTo(1));
        foreach (var error in errors.EnumerateArray())
        {
            Assert.That(error.GetProperty("path").GetString(), Does.StartWith("$"));
            Assert.That(error.GetProperty("message").GetString(), Is.Not.Empty);
        }

        Assert.That(current.RootElement.GetProperty("version").GetInt64(), Is.EqualTo(1), "the current version is unchanged");
    }

    [Test]
    public async Task PutConfig_WithTheCurrentHash_KeepsTheCurrentVersion()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        var first = await cp.PutValidConfigAsync(TestConfigs.Valid(9001));

        // Same config, different formatting: same canonical form, same hash.
        var again = await cp.PutValidConfigAsync(TestConfigs.Valid(9001).Replace("\n", " ", StringComparison.Ordinal));
        using var history = await cp.GetJsonAsync("/api/config/history");

        Assert.That(again, Is.EqualTo(first));
        Assert.That(history.RootElement.GetProperty("versions").GetArrayLength(), Is.EqualTo(1));
    }

    [Test]
    public async Task Rollback_MakesAnOldConfigTheNewestVersion_AndHistoryListsAll()
    {
        using var dir = new TempDir();
        await using var cp = await TestControlPlane.StartAsync(dir.Path);
        var v1 = await cp.PutValidConfigAsync(TestConfigs.Valid(9001));
        var v2 = await cp.PutValidConfigAsync(TestConfigs.Valid(9002));

        using var rollback = await cp.Admin.PostAsync(new Uri("/api/config/rollback/1", UriKind.Relative), null);
        using var rolled = JsonDocument.Parse(await rollback.Content.ReadAsStringAsync());
        using var current = await cp.GetJsonAsync("/api/config");
        using var history = await cp.GetJsonAsync("/api/config/history");
        using var missing = await cp.Admin.PostAsync(new Uri("/api/config/rollback/42", UriKind.Relative), null);

        Assert.Multiple(() =>
        {
            Assert.That(rollback.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(v2.Version, Is.EqualTo(2));
            Assert.That(rolled.RootElement.GetProperty("version").GetInt64(), Is.EqualTo(3));
            Assert.That(rolled.RootElement.GetProperty("hash").GetString(), Is.EqualTo(v1.Hash));
            Assert.That(current.RootElement.GetProperty("version").GetInt64(), Is.EqualTo(3));
            Assert.That(current.RootElement.GetProperty("hash").GetString(), Is.EqualTo(v1.Hash));
            var versions = history.RootElement.GetProperty("versions");
            Assert.That(versions.GetArrayLength(), Is.EqualTo(3));
            Assert.That(versions[2].GetProperty("source").GetString(), Is.EqualTo("rollback:1"));
            Assert.That(history.RootElement.GetProperty("current").GetInt64(), Is.EqualTo(3));
            Assert.That(missing.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        });
    }
}
