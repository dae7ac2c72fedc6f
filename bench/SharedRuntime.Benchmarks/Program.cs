using System.Globalization;
using BenchmarkDotNet.Running;

namespace SharedRuntime.Benchmarks;

internal static class BenchmarkProgram
{
    private static async Task Main(string[] args)
    {
        if (args is ["--allocations", var count, ..] && args.Length <= 3)
        {
            // --allocations N [invoke]: the state GET's bytes by type, or an invocation's.
            await AllocationProfile.RunAsync(int.Parse(count, CultureInfo.InvariantCulture), invoke: args is [_, _, "invoke"]);
            return;
        }
        if (args is ["--invoke-cost", var requests])
        {
            await AllocationProfile.RunInvokeCostAsync(int.Parse(requests, CultureInfo.InvariantCulture));
            return;
        }
        BenchmarkSwitcher.FromAssembly(typeof(BenchmarkProgram).Assembly).Run(args);
    }
}
