using System.Diagnostics.Metrics;
using SharedRuntime.Admission;

namespace SharedRuntime.Metrics;

/// <summary>
/// How close this runtime is to its own capacity, as one number from 0 (idle) to 1 (saturated), exported as
/// <c>sharedruntime_saturation</c> for autoscalers and dashboards. It is the larger of two fractions:
/// <list type="bullet">
/// <item><b>CPU</b>: the process's CPU time over the last <see cref="Window"/> divided by the CPU time the cores it may
/// use had in that time (<see cref="Environment.ProcessorCount"/>, which follows the container's CPU limit and the CPU
/// affinity): 1 when it kept every such core busy the whole time. It is the CPU the runtime got, not the CPU it wanted:
/// on a node whose cores other processes keep busy it reads lower than the runtime's load (the node's CPU pressure
/// says that; its threads' run-queue delay, summed, was tried and reads "saturated" on a merely contended node even
/// when idle).</item>
/// <item><b>Memory</b>: the bytes requests in flight hold now, of the node-wide ceiling (<c>--max-memory-bytes</c>)
/// beyond which every tenant's requests are refused with <c>node_memory</c>.</item>
/// </list>
/// A tenant's own limits (its rate, bulkhead line and memory budget) do not enter: a tenant held at its limits is not
/// a sign that more runtimes are needed, and more would not give it more. The CPU is sampled once a
/// <see cref="SamplePeriod"/>, off the request path.
/// </summary>
internal sealed class SaturationMetrics : IDisposable
{
    public static readonly TimeSpan SamplePeriod = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(5);

    private readonly TimeProvider _time;
    private readonly Func<TimeSpan> _processCpu;
    private readonly int _cores;
    private readonly MemoryBudget _nodeMemory;
    private readonly Queue<(long Timestamp, TimeSpan Cpu)> _samples = new();
    private readonly Lock _gate = new();
    private readonly ITimer _timer;
    private double _cpu;

    public SaturationMetrics(IMeterFactory meterFactory, TimeProvider time, MemoryBudget nodeMemory, Func<TimeSpan>? processCpu = null, int? cores = null)
    {
        _time = time;
        _nodeMemory = nodeMemory;
        _processCpu = processCpu ?? (static () => Environment.CpuUsage.TotalTime);
        _cores = Math.Max(1, cores ?? Environment.ProcessorCount);
        var meter = meterFactory.Create(RuntimeMetrics.MeterName);
        meter.CreateObservableGauge("sharedruntime.saturation", () => Value,
            description: "How close the runtime is to its capacity, 0 to 1: the larger of its CPU use over the last 5 s (of the cores it may use) and of the memory requests in flight hold (of the node-wide ceiling).");
        Sample();
        _timer = time.CreateTimer(static state => ((SaturationMetrics)state!).Sample(), this, SamplePeriod, SamplePeriod);
    }

    /// <summary>The gauge's value now.</summary>
    public double Value => Math.Max(Cpu, Memory);

    /// <summary>The CPU fraction over the last window, as of the last sample.</summary>
    public double Cpu => Volatile.Read(ref _cpu);

    /// <summary>The fraction of the node-wide memory ceiling requests in flight hold now.</summary>
    public double Memory => _nodeMemory.Limit <= 0 ? 0 : Math.Clamp((double)_nodeMemory.InUse / _nodeMemory.Limit, 0, 1);

    /// <summary>Reads the process's CPU time and recomputes the CPU fraction over the window ending now.</summary>
    internal void Sample()
    {
        lock (_gate)
        {
            var now = _time.GetTimestamp();
            var cpu = _processCpu();
            _samples.Enqueue((now, cpu));
            // Keep the newest sample at least a window old as the window's start.
            while (_samples.Count > 2 && _time.GetElapsedTime(_samples.ElementAt(1).Timestamp, now) >= Window)
            {
                _samples.Dequeue();
            }
            var (startTimestamp, startCpu) = _samples.Peek();
            var elapsed = _time.GetElapsedTime(startTimestamp, now);
            if (elapsed > TimeSpan.Zero)
            {
                Volatile.Write(ref _cpu, Math.Clamp((cpu - startCpu) / (elapsed * _cores), 0, 1));
            }
        }
    }

    public void Dispose() => _timer.Dispose();
}
