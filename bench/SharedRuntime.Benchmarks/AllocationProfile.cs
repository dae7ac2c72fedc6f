using System.Diagnostics.Tracing;
using System.Globalization;

namespace SharedRuntime.Benchmarks;

/// <summary>
/// Where a state GET's bytes go, by allocated type: runs <c>count</c> GETs through the in-process runtime with the
/// runtime's GC allocation-tick events on (one event per ~100 KB allocated, naming the type that crossed the mark), and
/// prints each type's share of the sampled bytes scaled to bytes per request. A profiler's view without a profiler:
/// <c>dotnet SharedRuntime.Benchmarks.dll --allocations 200000</c>.
/// </summary>
internal static class AllocationProfile
{
    public static async Task RunAsync(int count, bool invoke = false)
    {
        var (setup, request, cleanup) = invoke ? Invoke() : StateGet();
        await setup();
        for (var i = 0; i < 20_000; i++)
        {
            request();
        }
        using var listener = new AllocationTickListener();
        var before = GC.GetTotalAllocatedBytes(precise: true);
        for (var i = 0; i < count; i++)
        {
            request();
        }
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        listener.Dispose();
        await cleanup();

        var sampled = listener.BytesByType.Values.Sum();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{count} {(invoke ? "invocations" : "GETs")}, {allocated / (double)count:F0} B allocated per request (exact); by type, from {listener.Samples} allocation ticks:"));
        Console.WriteLine("| type | B per request (estimated) | share |");
        Console.WriteLine("|---|---|---|");
        foreach (var (type, bytes) in listener.BytesByType.OrderByDescending(p => p.Value))
        {
            var share = bytes / (double)sampled;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| `{type}` | {share * allocated / count:F0} | {share:P1} |"));
        }
    }

    private static (Func<Task> Setup, Func<int> Request, Func<Task> Cleanup) StateGet()
    {
        var benchmark = new StateGetBenchmarks();
        return (benchmark.SetupAsync, benchmark.Runtime, benchmark.CleanupAsync);
    }

    private static (Func<Task> Setup, Func<int> Request, Func<Task> Cleanup) Invoke()
    {
        var benchmark = new InvokeBenchmarks();
        return (benchmark.SetupAsync, benchmark.Runtime, benchmark.CleanupAsync);
    }

    /// <summary>
    /// An invocation's cost beside calling its app directly (<see cref="InvokeBenchmarks"/>): allocated bytes (exact)
    /// and this process's CPU time (client, runtime and app together) per request, in alternating rounds, so that the
    /// difference between the two is the runtime's share. <c>dotnet SharedRuntime.Benchmarks.dll --invoke-cost 50000</c>.
    /// </summary>
    public static async Task RunInvokeCostAsync(int count, int rounds = 5)
    {
        var benchmark = new InvokeBenchmarks();
        await benchmark.SetupAsync();
        for (var i = 0; i < 20_000; i++)
        {
            benchmark.Runtime();
            benchmark.Direct();
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{count} requests a round, one connection; CPU is this process's (client, runtime and app), allocations exact"));
        Console.WriteLine("| round | direct B/req | via runtime B/req | runtime's B/req | direct CPU µs/req | via runtime CPU µs/req | runtime's CPU µs/req |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        for (var round = 1; round <= rounds; round++)
        {
            var (directBytes, directCpu) = Measure(benchmark.Direct, count);
            var (runtimeBytes, runtimeCpu) = Measure(benchmark.Runtime, count);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {round} | {directBytes:F0} | {runtimeBytes:F0} | {runtimeBytes - directBytes:F0} | {directCpu:F1} | {runtimeCpu:F1} | {runtimeCpu - directCpu:F1} |"));
        }
        await benchmark.CleanupAsync();
    }

    private static (double Bytes, double CpuMicroseconds) Measure(Func<int> roundTrip, int count)
    {
        var bytes = GC.GetTotalAllocatedBytes(precise: true);
        var cpu = Environment.CpuUsage.TotalTime;
        for (var i = 0; i < count; i++)
        {
            roundTrip();
        }
        return ((GC.GetTotalAllocatedBytes(precise: true) - bytes) / (double)count, (Environment.CpuUsage.TotalTime - cpu).TotalMicroseconds / count);
    }

    private sealed class AllocationTickListener : EventListener
    {
        private const int AllocationTickEventId = 10;
        private const EventKeywords GcKeyword = (EventKeywords)0x1;
        private readonly Lock _gate = new();
        private bool _enabled = true;

        public Dictionary<string, long> BytesByType { get; } = new(StringComparer.Ordinal);
        public int Samples { get; private set; }

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
            {
                EnableEvents(eventSource, EventLevel.Verbose, GcKeyword);
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs eventData)
        {
            if (eventData.EventId != AllocationTickEventId || eventData.Payload is null)
            {
                return;
            }
            var type = eventData.PayloadNames!.IndexOf("TypeName") is var t and >= 0 ? eventData.Payload[t] as string ?? "?" : "?";
            var amount = eventData.PayloadNames.IndexOf("AllocationAmount64") is var a and >= 0 ? Convert.ToInt64(eventData.Payload[a], CultureInfo.InvariantCulture) : 100_000;
            lock (_gate)
            {
                if (!_enabled)
                {
                    return;
                }
                Samples++;
                BytesByType[type] = BytesByType.GetValueOrDefault(type) + amount;
            }
        }

        public override void Dispose()
        {
            lock (_gate)
            {
                _enabled = false;
            }
            base.Dispose();
        }
    }
}
