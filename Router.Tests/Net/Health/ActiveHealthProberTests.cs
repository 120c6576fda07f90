using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;
using Router.Core.Health;
using Router.Net.Health;

namespace Router.Tests.Net.Health;

public sealed class ActiveHealthProberTests
{
    private const int IntervalMs = 100;
    private const int TimeoutMs = 200;
    private const int Threshold = 2;

    // Worst case to notice a change: the initial delay, then per probe an interval (+15% jitter) and a timeout,
    // plus slack for a busy 2-core machine.
    private static readonly TimeSpan Deadline = TimeSpan.FromMilliseconds(
        ActiveHealthProber.MaxInitialDelayMs + (Threshold * ((IntervalMs * 1.15) + TimeoutMs)) + 3000);

    private TestUpstream _upstream = null!;
    private ActiveHealthProber _prober = null!;

    [SetUp]
    public void SetUp()
    {
        _upstream = new TestUpstream();
        _prober = new ActiveHealthProber(NullLogger.Instance);
    }

    [TearDown]
    public async Task TearDown()
    {
        await _prober.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Test]
    public async Task Probe_SendsGetWithHostAndConnectionClose()
    {
        HealthState state = Watch();

        await WaitUntilAsync(() => _upstream.Requests > 0);

        Assert.Multiple(() =>
        {
            Assert.That(_upstream.LastRequest, Does.StartWith("GET /healthz HTTP/1.1\r\n"));
            Assert.That(_upstream.LastRequest, Does.Contain("\r\nHost: upstream.test\r\n"));
            Assert.That(_upstream.LastRequest, Does.Contain("\r\nConnection: close\r\n"));
            Assert.That(state.IsHealthy, Is.True);
        });
        await WaitUntilAsync(() => state.ProbeCount > 0);
        Assert.That(state.FailedProbeCount, Is.Zero);
    }

    [Test]
    public async Task ServerErrors_MarkDown_AndRecovery_MarksUp()
    {
        HealthState state = Watch();
        _upstream.Status = 500;

        TimeSpan down = await TransitionAsync(state, healthy: false);
        _upstream.Status = 204;
        TimeSpan up = await TransitionAsync(state, healthy: true);

        Assert.Multiple(() =>
        {
            Assert.That(down, Is.LessThan(Deadline));
            Assert.That(up, Is.LessThan(Deadline));
            Assert.That(state.TransitionCount, Is.EqualTo(2));
        });
    }

    [Test]
    public async Task RefusedConnections_MarkDown_AndListeningAgain_MarksUp()
    {
        HealthState state = Watch();
        await _upstream.RefuseAsync();

        await TransitionAsync(state, healthy: false);
        _upstream.Resume();
        await TransitionAsync(state, healthy: true);

        Assert.That(state.IsHealthy, Is.True);
    }

    [Test]
    public async Task HangingUpstream_TimesOut_AndMarksDown()
    {
        HealthState state = Watch();
        _upstream.Hang = true;

        TimeSpan down = await TransitionAsync(state, healthy: false);
        _upstream.Hang = false;
        await TransitionAsync(state, healthy: true);

        Assert.That(down, Is.LessThan(Deadline));
    }

    [Test]
    public async Task StatusOutsideTheExpectedRange_CountsAsFailure()
    {
        _upstream.Status = 302;
        HealthState state = Watch(expectedMin: 200, expectedMax: 299);

        await TransitionAsync(state, healthy: false);

        Assert.That(state.IsHealthy, Is.False);
    }

    [Test]
    public async Task Unwatch_StopsProbing()
    {
        HealthState state = Watch();
        await WaitUntilAsync(() => state.ProbeCount >= 2);

        _prober.Unwatch("dest");
        long probes = state.ProbeCount;
        int requests = _upstream.Requests;
        await Task.Delay(IntervalMs * 4);

        Assert.Multiple(() =>
        {
            Assert.That(_prober.Count, Is.Zero);
            Assert.That(state.ProbeCount, Is.InRange(probes, probes + 1), "at most the probe already in flight");
            Assert.That(_upstream.Requests, Is.InRange(requests, requests + 1));
        });
    }

    [Test]
    public void Watch_SameKeyAndSettings_KeepsOneLoop()
    {
        var state = new HealthState();
        Watch(state);
        Watch(state);

        Assert.That(_prober.Count, Is.EqualTo(1));
    }

    [Test]
    public async Task Watch_SameKeyNewSettings_ReplacesTheLoop()
    {
        var state = new HealthState();
        _prober.Watch("dest", _upstream.EndPoint, "upstream.test", "/old", IntervalMs, TimeoutMs, 200, 399, state);
        await WaitUntilAsync(() => _upstream.LastRequest?.StartsWith("GET /old ", StringComparison.Ordinal) == true);

        _prober.Watch("dest", _upstream.EndPoint, "upstream.test", "/new", IntervalMs, TimeoutMs, 200, 399, state);
        await WaitUntilAsync(() => _upstream.LastRequest?.StartsWith("GET /new ", StringComparison.Ordinal) == true);

        Assert.That(_prober.Count, Is.EqualTo(1));
    }

    [TestCase("healthz")]
    [TestCase("/health z")]
    [TestCase("/health\r\nX: y")]
    public void Watch_InvalidPath_Throws(string path)
        => Assert.Throws<ArgumentException>(() => _prober.Watch(
            "dest", _upstream.EndPoint, "upstream.test", path, IntervalMs, TimeoutMs, 200, 399, new HealthState()));

    [TestCase("HTTP/1.1 200 OK\r\n", "Done", 200)]
    [TestCase("HTTP/1.0 503 Busy", "Done", 503)]
    [TestCase("HTTP/1.1 20", "NeedMore", 0)]
    [TestCase("HTT", "NeedMore", 0)]
    [TestCase("SSH-2.0-OpenSSH", "Malformed", 0)]
    [TestCase("HTTP/1.1 2x0 OK", "Malformed", 0)]
    public void TryParseStatus_ReadsTheStatusLine(string input, string expected, int status)
    {
        StatusParse result = ActiveHealthProber.TryParseStatus(System.Text.Encoding.ASCII.GetBytes(input), out int parsed);

        Assert.Multiple(() =>
        {
            Assert.That(result.ToString(), Is.EqualTo(expected));
            Assert.That(parsed, Is.EqualTo(status));
        });
    }

    [Test]
    public void Jitter_StaysWithinFifteenPercent()
    {
        for (int i = 0; i < 1000; i++)
        {
            Assert.That(ActiveHealthProber.Jitter(1000), Is.InRange(850, 1150));
        }
    }

    private HealthState Watch(int expectedMin = 200, int expectedMax = 399)
    {
        var state = new HealthState(unhealthyThreshold: Threshold, healthyThreshold: Threshold);
        Watch(state, expectedMin, expectedMax);
        return state;
    }

    private void Watch(HealthState state, int expectedMin = 200, int expectedMax = 399)
        => _prober.Watch("dest", _upstream.EndPoint, "upstream.test", "/healthz", IntervalMs, TimeoutMs, expectedMin, expectedMax, state);

    /// <summary>Awaits the state's Changed event for the given health and returns how long it took.</summary>
    private static async Task<TimeSpan> TransitionAsync(HealthState state, bool healthy)
    {
        var changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnChanged(HealthState s, bool isHealthy)
        {
            if (isHealthy == healthy)
            {
                changed.TrySetResult();
            }
        }

        long start = Stopwatch.GetTimestamp();
        state.Changed += OnChanged;
        try
        {
            if (state.IsHealthy != healthy)
            {
                await changed.Task.WaitAsync(Deadline);
            }

            return Stopwatch.GetElapsedTime(start);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"health did not become {(healthy ? "healthy" : "unhealthy")} within {Deadline.TotalMilliseconds} ms");
            throw;
        }
        finally
        {
            state.Changed -= OnChanged;
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        long start = Stopwatch.GetTimestamp();
        while (!condition())
        {
            if (Stopwatch.GetElapsedTime(start) > Deadline)
            {
                Assert.Fail("condition not met before the deadline");
            }

            await Task.Delay(10);
        }
    }
}
