namespace Router.Core.Resilience;

/// <summary>The clock every resilience gate is driven by: monotonic milliseconds, unaffected by wall-clock changes.</summary>
internal static class MonotonicClock
{
    /// <summary>Milliseconds since boot (<see cref="Environment.TickCount64"/>): cheap to read and never goes backwards.</summary>
    public static long NowMs => Environment.TickCount64;
}
