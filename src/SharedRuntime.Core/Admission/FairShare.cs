namespace SharedRuntime.Admission;

/// <summary>
/// Shares the runtime's own capacity among tenants in proportion to their rate limits while it is saturated. Each
/// tenant's limit is what it may have; when the tenants together want more than the process can serve, first come first
/// served would give every flooding tenant the same throughput whatever its limit. Instead every tenant's rate is
/// scaled by one common factor, <see cref="Scale"/>, chosen so that the scaled rates of the tenants that sent add up to
/// what the runtime served in the last period (a little more, so that the measure is of capacity and not of the scaled
/// rates themselves). A tenant under its weighted share is not touched; the others are refused (429 with Retry-After,
/// and push-back). When the process is no longer saturated the factor grows back to 1, where the
/// gate costs one read per request.
/// <para>
/// Recomputed every <see cref="Period"/> off the request path from per-tenant counters (<see cref="FairShareGate"/>);
/// the request path reads the factor and, only while it is below 1, updates one timestamp with a compare-and-swap.
/// </para>
/// </summary>
internal sealed class FairShare : IDisposable
{
    public static readonly TimeSpan Period = TimeSpan.FromMilliseconds(250);

    /// <summary>The scaled rates add up to this much more than was served, so that the runtime stays busy.</summary>
    internal const double Headroom = 0.1;

    /// <summary>Saturated periods in a row before the rates are scaled: one busy moment is not a saturated process.</summary>
    internal const int SaturatedPeriods = 2;

    /// <summary>Growth of the factor per period once the process is no longer saturated.</summary>
    internal const double Recovery = 1.25;

    /// <summary>No tenant is scaled below this fraction of its limit.</summary>
    internal const double Floor = 0.01;

    /// <summary>The process is saturated when its CPU over a period is at least this fraction of the cores it may use.</summary>
    internal const double BusyThreshold = 0.9;

    private readonly Func<bool> _saturated;
    private Func<IEnumerable<FairShareGate>>? _gates;
    private ITimer? _timer;
    private long _lastTick;
    private int _saturatedInARow;
    private double _scale = 1;

    /// <param name="time">The clock of the gates and of the period.</param>
    /// <param name="saturated">Whether the process was saturated over the period just ended; null measures it (<see cref="ProcessSaturation"/>).</param>
    public FairShare(TimeProvider time, Func<bool>? saturated = null)
    {
        Time = time;
        _saturated = saturated ?? new ProcessSaturation(time).Saturated;
        _lastTick = time.GetTimestamp();
    }

    /// <summary>A fair share that never scales (the runtime option turned off, or shared admission).</summary>
    public static FairShare Off { get; } = new(TimeProvider.System, static () => false);

    public TimeProvider Time { get; }

    /// <summary>Every tenant's rate is its limit times this, 0 to 1; 1 when the runtime is not saturated.</summary>
    public double Scale => Volatile.Read(ref _scale);

    /// <summary>Starts recomputing the factor every <see cref="Period"/> over the gates <paramref name="gates"/> returns.</summary>
    public void Start(Func<IEnumerable<FairShareGate>> gates)
    {
        _gates = gates;
        _lastTick = Time.GetTimestamp();
        _timer ??= Time.CreateTimer(static state => ((FairShare)state!).Tick(), this, Period, Period);
    }

    private void Tick()
    {
        if (_gates is { } gates)
        {
            var now = Time.GetTimestamp();
            var elapsed = Time.GetElapsedTime(_lastTick, now);
            _lastTick = now;
            Tick(gates(), elapsed, _saturated());
        }
    }

    /// <summary>
    /// One step of the controller: reads and resets each gate's counters over <paramref name="elapsed"/>. Fewer than two
    /// tenants sent without being refused by their own limits: the factor is 1. Saturated for <see cref="SaturatedPeriods"/> periods in a row: the factor becomes
    /// what was served, plus <see cref="Headroom"/>, divided by the limits of the tenants that sent
    /// anything, so that each such tenant may have its limit's share of what the runtime can serve. (Under first come
    /// first served a flooding tenant's demand cannot be told from what it got, so every tenant that sent counts with its
    /// whole weight; one that uses less than its share leaves CPU idle, the process is no longer saturated, and the
    /// factor grows back.) Not saturated: the factor grows by <see cref="Recovery"/>, up to 1. A saturated period in
    /// which nothing was served says nothing and leaves the factor as it is.
    /// </summary>
    internal void Tick(IEnumerable<FairShareGate> gates, TimeSpan elapsed, bool saturated)
    {
        var seconds = elapsed.TotalSeconds;
        if (seconds <= 0)
        {
            return;
        }
        var served = 0.0;
        var weight = 0.0;
        var senders = 0;
        foreach (var gate in gates)
        {
            var (attempts, admitted, limited) = gate.TakeCounts();
            // A tenant its own limit refused is held at that limit already: scaling it would not free the CPU its
            // refusals take, and the capacity it leaves is not the runtime's. It counts neither as served nor as weight.
            if (attempts > 0 && limited == 0)
            {
                served += admitted / seconds;
                weight += gate.Limit;
                senders++;
            }
        }
        _saturatedInARow = saturated ? _saturatedInARow + 1 : 0;
        var scale = Scale;
        if (senders < 2)
        {
            // One tenant alone has nobody to be fair to: it gets what the runtime can give.
            scale = 1;
        }
        else if (saturated)
        {
            if (served > 0 && _saturatedInARow >= SaturatedPeriods)
            {
                scale = served * (1 + Headroom) / weight;
            }
        }
        else if (scale < 1)
        {
            scale *= Recovery;
        }
        Volatile.Write(ref _scale, Math.Clamp(scale, Floor, 1));
    }

    public void Dispose() => _timer?.Dispose();
}

/// <summary>
/// One tenant's gate of the <see cref="FairShare"/>: a rate of its limit times the common factor, kept as the theoretical
/// arrival time of its next request (a generic cell rate algorithm: one long, one compare-and-swap, no lock and no
/// allocation), and the counts of its attempts and admissions that the controller reads each period.
/// </summary>
internal sealed class FairShareGate(FairShare share, double limit)
{
    /// <summary>How far ahead of its scaled rate a tenant may run: a burst of this much of its scaled rate.</summary>
    internal static readonly TimeSpan Tolerance = TimeSpan.FromMilliseconds(100);

    /// <summary>Whether a controller reads the counts: with the fair share off (the default) nothing is counted.</summary>
    private readonly bool _counted = !ReferenceEquals(share, FairShare.Off);
    private long _theoreticalArrival = long.MinValue;
    private int _attempts;
    private int _admitted;
    private int _limited;

    /// <summary>The tenant's own limit in requests per second: its weight.</summary>
    public double Limit { get; } = Math.Max(limit, 0.001);

    /// <summary>
    /// Counts an attempt; true when the tenant is within its scaled rate (always, while the factor is 1). On refusal,
    /// <paramref name="retryAfter"/> says when it will be within it again.
    /// </summary>
    public bool TryPass(out TimeSpan retryAfter)
    {
        retryAfter = TimeSpan.Zero;
        if (!_counted)
        {
            return true;
        }
        Interlocked.Increment(ref _attempts);
        var scale = share.Scale;
        if (scale >= 1)
        {
            return true;
        }
        var time = share.Time;
        var frequency = time.TimestampFrequency;
        var interval = (long)(frequency / (Limit * scale));
        var tolerance = (long)(frequency * Tolerance.TotalSeconds);
        var now = time.GetTimestamp();
        while (true)
        {
            var arrival = Volatile.Read(ref _theoreticalArrival);
            var next = Math.Max(arrival, now);
            if (next - now > tolerance)
            {
                retryAfter = TimeSpan.FromSeconds((double)(next - now - tolerance) / frequency);
                return false;
            }
            if (Interlocked.CompareExchange(ref _theoreticalArrival, next + interval, arrival) == arrival)
            {
                return true;
            }
        }
    }

    /// <summary>The attempt that passed was admitted by the tenant's own limit too.</summary>
    public void Admitted()
    {
        if (_counted)
        {
            Interlocked.Increment(ref _admitted);
        }
    }

    /// <summary>The attempt that passed was refused by the tenant's own limit.</summary>
    public void Limited()
    {
        if (_counted)
        {
            Interlocked.Increment(ref _limited);
        }
    }

    /// <summary>The counts since the last call, reset.</summary>
    internal (int Attempts, int Admitted, int Limited) TakeCounts() =>
        (Interlocked.Exchange(ref _attempts, 0), Interlocked.Exchange(ref _admitted, 0), Interlocked.Exchange(ref _limited, 0));
}

/// <summary>
/// Whether the process was saturated over the period since it was last asked: its CPU time was at least
/// <see cref="FairShare.BusyThreshold"/> of the cores it may use, or at least half that while work waited in the thread
/// pool's queue (on a core other processes share, the CPU the runtime got reads low while its own work still queues).
/// </summary>
internal sealed class ProcessSaturation(TimeProvider time)
{
    private readonly int _cores = Math.Max(1, Environment.ProcessorCount);
    private TimeSpan _lastCpu = Environment.CpuUsage.TotalTime;
    private long _last = time.GetTimestamp();

    public bool Saturated()
    {
        var now = time.GetTimestamp();
        var cpu = Environment.CpuUsage.TotalTime;
        var elapsed = time.GetElapsedTime(_last, now);
        var busy = elapsed > TimeSpan.Zero ? (cpu - _lastCpu) / (elapsed * _cores) : 0;
        _last = now;
        _lastCpu = cpu;
        return busy >= FairShare.BusyThreshold || busy >= FairShare.BusyThreshold / 2 && ThreadPool.PendingWorkItemCount > _cores;
    }
}
