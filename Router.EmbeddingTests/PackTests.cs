using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Text;
using NUnit.Framework;

namespace Router.EmbeddingTests;

/// <summary>
/// The packages work for an application outside this repo: pack Router.Core and Router.Net, restore them from a
/// local folder into a copy of samples/EmbeddedRouter, build it, run it. Slow (a restore and a build): category Pack.
/// </summary>
[TestFixture]
[Category("Pack")]
[NonParallelizable]
public sealed class PackTests
{
    private const string Version = "0.1.0-packtest";
    private string _work = null!;

    [SetUp]
    public void SetUp() => _work = Directory.CreateTempSubdirectory("router-pack-").FullName;

    [TearDown]
    public void TearDown()
    {
        try
        {
            Directory.Delete(_work, recursive: true);
        }
        catch (IOException)
        {
            // A build server may still hold a file for a moment; the temp folder is cleaned up by the OS later.
        }
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task PackedPackages_RestoredIntoTheSample_BuildAndRunIt(CancellationToken cancellationToken)
    {
        string repo = FindRepoRoot();
        string configuration = typeof(PackTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        string feed = Path.Combine(_work, "feed");
        string app = Path.Combine(_work, "app");

        // The test run has just built both projects in this configuration: pack what was built.
        foreach (var project in new[] { "Router.Core/Router.Core.csproj", "Router.Net/Router.Net.csproj" })
        {
            await DotnetAsync(repo, cancellationToken, "pack", Path.Combine(repo, project), "-c", configuration, "--no-build", "-o", feed, "-p:PackageVersion=" + Version);
        }

        Assert.That(Path.Combine(feed, $"Router.Net.{Version}.nupkg"), Does.Exist);
        Assert.That(Path.Combine(feed, $"Router.Core.{Version}.nupkg"), Does.Exist);
        foreach (var id in new[] { "Router.Core", "Router.Net" })
        {
            using var package = ZipFile.OpenRead(Path.Combine(feed, $"{id}.{Version}.nupkg"));
            Assert.That(package.GetEntry("README.md"), Is.Not.Null, id + " has a README");
            using var nuspec = new StreamReader(package.GetEntry(id + ".nuspec")!.Open());
            string metadata = await nuspec.ReadToEndAsync(cancellationToken);
            Assert.That(metadata, Does.Contain("<license type=\"expression\">MIT</license>"));
            Assert.That(metadata, Does.Contain("<readme>README.md</readme>"));
            Assert.That(metadata, Does.Contain("<repository type=\"git\""), id + " carries source-control metadata");
        }

        Directory.CreateDirectory(app);
        foreach (var file in Directory.GetFiles(Path.Combine(repo, "samples", "EmbeddedRouter")))
        {
            File.Copy(file, Path.Combine(app, Path.GetFileName(file)));
        }

        WriteNuGetConfig(app, feed);
        string output = Path.Combine(app, "out");

        // No NuGet audit: it fetches vulnerability data from nuget.org on every restore, and the sample treats its
        // warning (NU1900) as an error, so a slow or unreachable nuget.org could fail this test. Without it the
        // restore needs no network at all once the repo's own restore has put the dependencies in the user's cache.
        await DotnetAsync(app, cancellationToken, "build", "EmbeddedRouter.csproj", "-c", "Release", "-o", output, "--disable-build-servers",
            "-p:UseRouterPackages=true", "-p:RouterPackageVersion=" + Version, "-p:NuGetAudit=false");

        string run = await DotnetAsync(app, cancellationToken, Path.Combine(output, "EmbeddedRouter.dll"));

        Assert.That(run, Does.Contain("GET / -> hello from A"));
        Assert.That(run, Does.Contain("GET / -> hello from B"));
        Assert.That(run, Does.Contain("invalid config applied: False"));
        Assert.That(run, Does.Contain("$.routes[0].cluster"));
        Assert.That(run, Does.Contain("router stopped"));
    }

    /// <summary>
    /// Local feed first, nuget.org for the rest; packages go to a private folder so the packed test version never
    /// lands in the user's cache, and the user's cache is a fallback so nothing already there is downloaded again.
    /// </summary>
    private static void WriteNuGetConfig(string app, string feed)
    {
        string userCache = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var config = new StringBuilder();
        config.AppendLine("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
        config.AppendLine("<configuration>");
        config.AppendLine($"  <config><add key=\"globalPackagesFolder\" value=\"{Path.Combine(app, "packages")}\" /></config>");
        config.AppendLine("  <packageSources>");
        config.AppendLine("    <clear />");
        config.AppendLine($"    <add key=\"local\" value=\"{feed}\" />");
        config.AppendLine("    <add key=\"nuget.org\" value=\"https://api.nuget.org/v3/index.json\" protocolVersion=\"3\" />");
        config.AppendLine("  </packageSources>");
        if (Directory.Exists(userCache))
        {
            config.AppendLine($"  <fallbackPackageFolders><clear /><add key=\"user\" value=\"{userCache}\" /></fallbackPackageFolders>");
        }

        config.AppendLine("</configuration>");
        File.WriteAllText(Path.Combine(app, "nuget.config"), config.ToString());
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Router.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Router.sln not found above " + TestContext.CurrentContext.TestDirectory);
    }

    private static async Task<string> DotnetAsync(string workingDirectory, CancellationToken cancellationToken, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";

        // Not this test run's MSBuild/test host settings: the child is a build of its own.
        start.Environment.Remove("MSBuildExtensionsPath");
        start.Environment.Remove("MSBuildSDKsPath");
        start.Environment.Remove("MSBUILD_EXE_PATH");

        using var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        string output = await stdout + await stderr;
        TestContext.Out.WriteLine($"$ dotnet {string.Join(' ', args)}  (exit {process.ExitCode})");
        TestContext.Out.WriteLine(output);
        Assert.That(process.ExitCode, Is.Zero, $"dotnet {string.Join(' ', args)} failed:\n{output}");
        return output;
    }
}
