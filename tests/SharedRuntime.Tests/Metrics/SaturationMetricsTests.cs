using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using SharedRuntime.Admission;
using SharedRuntime.Metrics;

namespace SharedRuntime.Tests.Metrics;

public sealed class SaturationMetricsTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly FakeTimeProvider _time = new();
    private TimeSpan _cpu;

    private SaturationMetrics Create(MemoryBudget? node = null, int cores = 2) =>
        new(_services.GetRequiredService<IMeterFactory>(), _time, node ?? new MemoryBudget(1000), () => _cpu, cores);

    /// <summary>Advances time second by second, the process using <paramref name="busyCores"/> cores meanwhile.</summary>
    private void Run(int seconds, double busyCores)
    {
        for (var i = 0; i < seconds; i++)
        {
            _cpu += TimeSpan.FromSeconds(busyCores);
            _time.Advance(TimeSpan.FromSeconds(1));
        }
    }

    [Fact]
    public void CpuIsTheShareOfTheCoresItMayUseOverTheLastFiveSeconds()
    {
        using var saturation = Create(cores: 2);
        Assert.Equal(0, saturation.Value);

        Run(10, busyCores: 1);
        Assert.Equal(0.5, saturation.Value, 6);

        Run(10, busyCores: 2);
        Assert.Equal(1, saturation.Value, 6);

        // Idle again: the busy seconds leave the window one by one, and after five it is back to 0.
        Run(2, busyCores: 0);
        Assert.InRange(saturation.Value, 0.2, 0.9);
        Run(4, busyCores: 0);
        Assert.Equal(0, saturation.Value, 6);
    }

    [Fact]
    public void MemoryHeldByRequestsInFlightCountsWhenItIsTheLarger()
    {
        var node = new MemoryBudget(1000);
        using var saturation = Create(node, cores: 1);
        Run(6, busyCores: 0.1);
        Assert.Equal(MemoryCharge.Charged, node.TryCharge(800));
        Assert.Equal(0.8, saturation.Value, 6);
        node.Release(800);
        Assert.Equal(0.1, saturation.Value, 6);
    }

    [Fact]
    public void TheGaugeIsExportedUnderOneName()
    {
        using var saturation = Create();
        Run(6, busyCores: 1);
        var seen = new List<double>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Name == "sharedruntime.saturation" && instrument.Meter.Scope == _services.GetRequiredService<IMeterFactory>())
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, value, _, _) => seen.Add(value));
        listener.Start();
        listener.RecordObservableInstruments();
        Assert.Equal([0.5], seen);
    }

    public void Dispose() => _services.Dispose();
}
