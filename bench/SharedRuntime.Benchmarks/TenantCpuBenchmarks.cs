using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.Metrics;

namespace SharedRuntime.Benchmarks;

/// <summary>
/// What the per-tenant CPU counter adds to one request's flow: its start and stop around an async method that
/// completes at once, and around one that yields once (its continuation runs on another pass of the thread pool, so
/// the flow leaves and re-enters a thread: two more reads of the thread's CPU clock). The baseline is the same method
/// with the counter turned off (<c>--tenant-cpu-metrics false</c>).
/// </summary>
[MemoryDiagnoser]
public class TenantCpuBenchmarks
{
    private ServiceProvider _services = null!;
    private MeterListener _listener = null!;
    private TenantCpuMetrics _on = null!;
    private TenantCpuMetrics _off = null!;

    [GlobalSetup]
    public void Setup()
    {
        _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = _services.GetRequiredService<IMeterFactory>();
        _on = new TenantCpuMetrics(meters);
        _off = new TenantCpuMetrics(meters, enabled: false);
        // The counter records only while something listens (the Prometheus exporter, in the runtime).
        _listener = new MeterListener { InstrumentPublished = (instrument, l) => { if (instrument.Meter.Scope == meters) { l.EnableMeasurementEvents(instrument); } } };
        _listener.SetMeasurementEventCallback<double>(static (_, _, _, _) => { });
        _listener.Start();
        if (!_on.Enabled)
        {
            throw new InvalidOperationException("thread CPU time cannot be read here (Linux only)");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _listener.Dispose();
        _services.Dispose();
    }

    [Benchmark(Baseline = true, Description = "request, counter off")]
    public Task Off() => RequestAsync(_off, yields: false);

    [Benchmark(Description = "request, counter on")]
    public Task On() => RequestAsync(_on, yields: false);

    [Benchmark(Description = "request that yields once, counter off")]
    public Task OffYielding() => RequestAsync(_off, yields: true);

    [Benchmark(Description = "request that yields once, counter on")]
    public Task OnYielding() => RequestAsync(_on, yields: true);

    [Benchmark(Description = "one read of the thread's CPU clock")]
    public long Clock() => ThreadCpuTime.Now();

    private static async Task RequestAsync(TenantCpuMetrics cpu, bool yields)
    {
        var scope = cpu.Start("bench");
        try
        {
            if (yields)
            {
                await Task.Yield();
            }
        }
        finally
        {
            cpu.Stop(scope);
        }
    }
}
