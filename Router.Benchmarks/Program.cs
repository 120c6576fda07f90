using BenchmarkDotNet.Running;

namespace Router.Benchmarks;

internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        // "fanout" is an end-to-end harness with its own clock, not a BenchmarkDotNet micro benchmark.
        if (args.Length > 0 && args[0] == "fanout")
        {
            return await ControlPlaneFanOut.RunAsync(args[1..]);
        }

        if (args.Length > 0 && args[0] == "allocprofile")
        {
            return await AllocationProfile.RunAsync(args[1..]);
        }

        if (args.Length > 0 && args[0] == "benchcheck")
        {
            return BenchmarkGate.Run(args[1..]);
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
