using System.Net;
using System.Net.Sockets;
using NUnit.Framework;
using Router.Tests.Support;

namespace Router.Tests.EndToEnd;

/// <summary>
/// The real <c>router</c> executable given bad flag values, taken ports, --help and signals: a clear one-line error
/// and a non-zero exit code, never a stack trace or a hang.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class CliAuditTests
{
    [TestCase("--listen", "127.0.0.1", "--listen: '127.0.0.1' is not IP:PORT")]
    [TestCase("--listen", "127.0.0.1:70000", "--listen: '127.0.0.1:70000' is not IP:PORT")]
    [TestCase("--listen", "127.0.0.1:-1", "--listen: '127.0.0.1:-1' is not IP:PORT")]
    [TestCase("--listen", "999.1.1.1:80", "--listen: '999.1.1.1:80' is not IP:PORT")]
    [TestCase("--listen", "example.com:80", "--listen: 'example.com:80' is not IP:PORT")]
    [TestCase("--listen", "localhost:70000", "--listen: 'localhost:70000' is not IP:PORT")]
    [TestCase("--admin", "nope", "--admin: 'nope' is not IP:PORT")]
    [TestCase("--listen-tls", "nope:443", "--listen-tls: 'nope:443' is not IP:PORT")]
    [TestCase("--max-connections", "0", "--max-connections: must be at least 1, not 0")]
    [TestCase("--max-connections", "-5", "--max-connections: must be at least 1, not -5")]
    [TestCase("--drain-timeout-ms", "-1", "--drain-timeout-ms: must be 0 or more, not -1")]
    [TestCase("--access-log", "/nonexistent-router-dir/access.log", "--access-log: cannot open '/nonexistent-router-dir/access.log'")]
    public async Task BadFlagValue_WithTheDemo_ExitsTwoWithOneLineNamingTheFlag(string flag, string value, string expected)
    {
        var (exitCode, output) = await RunAsync("--demo", flag, value);

        AssertOneLineError(exitCode, 2, output, expected);
    }

    [TestCase("not a url", "--control-plane: 'not a url' is not a ws:// or wss:// URL")]
    [TestCase("http://127.0.0.1:1/ws", "--control-plane: 'http://127.0.0.1:1/ws' is not a ws:// or wss:// URL")]
    public async Task ControlPlane_ThatIsNotAWebSocketUrl_ExitsTwoWithOneLine(string url, string expected)
    {
        var (exitCode, output) = await RunAsync("--control-plane", url, "--token-file", "/etc/hostname", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0");

        AssertOneLineError(exitCode, 2, output, expected);
    }

    [TestCase("--config")]
    [TestCase("--control-plane")]
    public async Task Demo_CombinedWithAnotherConfigSource_ExitsTwoWithOneLine(string flag)
    {
        string value = flag == "--config" ? "/etc/hostname" : "ws://127.0.0.1:1/ws";

        var (exitCode, output) = await RunAsync("--demo", flag, value, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0");

        AssertOneLineError(exitCode, 2, output, "--demo routes to its own upstreams: it cannot be combined with --config or --control-plane");
    }

    [TestCase("--listen")]
    [TestCase("--admin")]
    public async Task PortAlreadyInUse_ExitsOneWithOneLineNamingTheAddress(string flag)
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        string address = taken.LocalEndpoint.ToString()!;
        string other = flag == "--listen" ? "--admin" : "--listen";

        var (exitCode, output) = await RunAsync("--demo", flag, address, other, "127.0.0.1:0");

        Assert.That(exitCode, Is.EqualTo(1), output);
        Assert.That(output, Does.Contain($"cannot listen on {address}: Address already in use"));
        Assert.That(output, Does.Not.Contain("   at ").And.Not.Contain("Unhandled exception"));
    }

    [TestCase("--bogus", "Unrecognized command or argument '--bogus'")]
    [TestCase("--max-connections=99999999999", "Cannot parse argument '99999999999' for option '--max-connections'")]
    public async Task UnknownFlagOrUnparsableNumber_ExitsOneWithoutAStackTrace(string arg, string expected)
    {
        var (exitCode, output) = await RunAsync("--demo", arg);

        Assert.That(exitCode, Is.EqualTo(1), output);
        Assert.That(output, Does.Contain(expected));
        Assert.That(output, Does.Not.Contain("   at ").And.Not.Contain("Unhandled exception"));
    }

    [Test]
    public async Task Help_ListsEveryFlagAndTheValidateCommand_AndExitsZero()
    {
        var (exitCode, output) = await RunAsync("--help");

        Assert.That(exitCode, Is.Zero, output);
        foreach (var flag in (string[])["--config", "--listen", "--listen-tls", "--cert", "--key", "--admin", "--control-plane", "--token-file",
                     "--ca-file", "--cache-dir", "--node-id", "--demo", "--drain-timeout-ms", "--access-log", "--max-connections", "validate <file>"])
        {
            Assert.That(output, Does.Contain(flag));
        }
    }

    [Test]
    public async Task Demo_AnswersOnItsListener_AndStopsWithExitZeroOnSigint()
    {
        await using var router = await RouterProcess.StartAsync(["--demo"]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };

        var body = await http.GetStringAsync(new Uri($"http://{router.EndPoint}/api/hello"));
        Assert.That(body, Does.StartWith("Hello from demo upstream"));
        Assert.That(router.Output, Does.Contain($"Router demo is up on http://{router.EndPoint}"));

        router.Signal(2); // SIGINT, as Ctrl-C

        Assert.That(await router.WaitForExitAsync(TimeSpan.FromSeconds(20)), Is.Zero, router.Output);
        Assert.That(router.Output, Does.Contain("Stopped"));
    }

    private static void AssertOneLineError(int exitCode, int expectedExitCode, string output, string expected)
    {
        Assert.That(exitCode, Is.EqualTo(expectedExitCode), output);
        // The descriptor-limit warning depends on the machine's ulimit, not on the flag under test.
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => !l.Contains("descriptors but this process may open", StringComparison.Ordinal)).ToArray();
        Assert.That(lines, Has.Length.EqualTo(1), output);
        Assert.That(lines[0], Does.StartWith(expected));
    }

    private static Task<(int ExitCode, string Output)> RunAsync(params string[] args) =>
        RouterProcess.RunToExitAsync("Router.Net", args);
}
