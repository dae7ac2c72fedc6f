using System.Diagnostics.Metrics;

namespace SharedRuntime.Metrics;

/// <summary>
/// CPU time spent on each tenant's requests, measured: exported as <c>sharedruntime_tenant_cpu_seconds_total</c>
/// labelled <c>app_id</c>. A request's work runs in its own async flow, on whichever pool threads its continuations
/// land on; a flow-local value with a change callback marks every moment a thread starts or stops running that flow,
/// and the thread's CPU clock (<see cref="ThreadCpuTime"/>) is read at each, so each slice of the request on each thread
/// is charged to its tenant. What runs outside the request's flow (Kestrel parsing the request and writing the answer
/// to the socket, background work of the components) is charged to no tenant. Work a request starts in the background
/// is charged to it only until the request ends.
/// </summary>
internal sealed class TenantCpuMetrics
{
    private static readonly AsyncLocal<TenantCpuScope?> Current = new(OnFlowChanged);

    [ThreadStatic]
    private static long t_sliceStart;

    private readonly Counter<double> _cpu;

    public TenantCpuMetrics(IMeterFactory meterFactory, bool enabled = true)
    {
        var meter = meterFactory.Create(RuntimeMetrics.MeterName);
        _cpu = meter.CreateCounter<double>("sharedruntime.tenant.cpu", unit: "s",
            description: "CPU time spent on a tenant's requests, measured with the threads' CPU clocks while they ran the request, by tenant.");
        Enabled = enabled && ThreadCpuTime.IsSupported;
    }

    /// <summary>False when turned off or when thread CPU time cannot be read here (not Linux).</summary>
    public bool Enabled { get; }

    /// <summary>
    /// Starts charging the current flow's CPU time to <paramref name="appId"/>; call from the async method that runs
    /// the request, and <see cref="Stop"/> in its <c>finally</c>. Null (and nothing to stop) when not measured.
    /// </summary>
    public TenantCpuScope? Start(string appId)
    {
        if (!Enabled || !_cpu.Enabled)
        {
            return null;
        }
        var scope = new TenantCpuScope(appId);
        Current.Value = scope;
        return scope;
    }

    /// <summary>Ends the request's measurement and adds its CPU time to its tenant's counter.</summary>
    public void Stop(TenantCpuScope? scope)
    {
        if (scope is null)
        {
            return;
        }
        Current.Value = null;
        scope.End();
        _cpu.Add(scope.Nanoseconds / 1e9, new KeyValuePair<string, object?>("app_id", scope.AppId));
    }

    /// <summary>Called when a thread enters or leaves a flow that carries a scope: closes one slice and opens the next.</summary>
    private static void OnFlowChanged(AsyncLocalValueChangedArgs<TenantCpuScope?> change)
    {
        var now = ThreadCpuTime.Now();
        change.PreviousValue?.Charge(now - t_sliceStart);
        if (change.CurrentValue is not null)
        {
            t_sliceStart = now;
        }
    }
}

/// <summary>One request's CPU time so far.</summary>
internal sealed class TenantCpuScope(string appId)
{
    private long _nanoseconds;
    private volatile bool _ended;

    public string AppId { get; } = appId;

    public long Nanoseconds => Interlocked.Read(ref _nanoseconds);

    public void Charge(long nanoseconds)
    {
        if (!_ended && nanoseconds > 0)
        {
            Interlocked.Add(ref _nanoseconds, nanoseconds);
        }
    }

    public void End() => _ended = true;
}
