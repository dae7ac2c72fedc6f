namespace SharedRuntime.Admission;

/// <summary>
/// Shares the runtime's own capacity among tenants by their rate limits while it is saturated: a weighted max-min fair
/// (water-filling) allocation. Each tenant's limit is its weight; when the tenants together want more than the process
/// can serve, first come first served would give every flooding tenant the same throughput whatever its limit. Instead
/// a tenant whose demand over the last period is well under its weighted share or under an equal split, or that keeps at
/// most <see cref="ClosedLoop"/> requests in flight, is not limited at all (its gate stays open, with no shrunken burst), and
/// the capacity it leaves is shared among the others by weight: each of them is
/// capped at its limit times one water level, <see cref="Level"/>. Above its cap, with push-back on, a request waits for
/// the tenant's next turn at the capped rate (<see cref="FairShareGate.TryPass(ConnectionTurn?, TimeSpan, out TimeSpan)"/>),
/// so that a flood queues behind its own requests and each tenant is served exactly its cap; a request whose turn is
/// too far off, or with push-back off, is refused (429 with Retry-After). When the process is no longer saturated the caps grow back until they reach the limits.
/// <para>
/// Recomputed every <see cref="Period"/> off the request path from per-tenant counters (<see cref="FairShareGate"/>).
/// While the process is not saturated and nobody is capped, the request path costs one read; the counters run only
/// from the first saturated period until every cap is lifted again.
/// </para>
/// </summary>
internal sealed class FairShare : IDisposable
{
    public static readonly TimeSpan Period = TimeSpan.FromMilliseconds(250);

    /// <summary>The allocation adds up to this much more than was served, so that the runtime stays busy.</summary>
    internal const double Headroom = 0.1;

    /// <summary>Saturated periods in a row before anyone is capped: one busy moment is not a saturated process.</summary>
    internal const int SaturatedPeriods = 2;

    /// <summary>Growth of the caps per period once the process is no longer saturated.</summary>
    internal const double Recovery = 1.25;

    /// <summary>No tenant is capped below this fraction of its limit.</summary>
    internal const double Floor = 0.01;

    /// <summary>
    /// A tenant that was not refused by its cap and used less than this fraction of its weighted share, or of an equal split
    /// of the capacity among the contending tenants, is light: it is not capped. Under first come first served a flooding tenant's demand cannot be told from what it got (it would take
    /// more if it were given more), so a tenant near its share counts as wanting more; one this far under it does not.
    /// </summary>
    internal const double LightFraction = 0.25;

    /// <summary>
    /// A tenant that sent at most this many requests in a period is light whatever its share: a few requests are never
    /// refused by the fair share, however little the runtime serves while a flood saturates it (a flood of expensive
    /// requests leaves a small capacity to share, and a bystander's few requests could otherwise be a large part of it).
    /// </summary>
    internal const int Handful = 16;

    /// <summary>
    /// A tenant that keeps at most this many requests in flight at once is light whatever its rate: a client that waits
    /// for each answer before it sends again (a closed loop) is held to one request per round trip by its own latency, so
    /// it cannot flood a core however fast it is answered, and taking its share away would only refuse it. Two, not one:
    /// the answer reaches such a client a moment before the runtime has counted its request out, so its next request can
    /// find the last one still counted. A flood keeps many requests in flight: it is the client's own queue that a
    /// saturated runtime does not see, on as many connections or streams as it keeps busy.
    /// <para>
    /// An attempt overlaps when it finds the tenant with more than this many requests in flight (itself included), or when
    /// more than this many of the tenant's attempts came since the last one on its connection (HTTP/1.1) or stream
    /// (HTTP/2): a client that keeps N connections busy comes back to each one after about N of its requests, even when the
    /// runtime answers each request at once and so never holds two. A tenant is concurrent in a period when more than
    /// half its attempts overlapped: a background call or a connection that comes back after a while is not a flood.
    /// </para>
    /// </summary>
    internal const int ClosedLoop = 2;

    /// <summary>The process is saturated when its CPU over a period is at least this fraction of the cores it may use.</summary>
    internal const double BusyThreshold = 0.9;

    private static readonly Comparer<Contender> ByWeightedUse =
        Comparer<Contender>.Create(static (a, b) => (a.Used / a.Gate.Limit).CompareTo(b.Used / b.Gate.Limit));

    private readonly Func<bool> _saturated;
    private Func<IEnumerable<FairShareGate>>? _gates;
    private ITimer? _timer;
    private long _lastTick;
    private int _saturatedInARow;
    private double _level = 1;
    private volatile bool _counting;

    /// <param name="time">The clock of the gates and of the period.</param>
    /// <param name="saturated">Whether the process was saturated over the period just ended; null measures it (<see cref="ProcessSaturation"/>).</param>
    public FairShare(TimeProvider time, Func<bool>? saturated = null)
    {
        Time = time;
        _saturated = saturated ?? new ProcessSaturation(time).Saturated;
        _lastTick = time.GetTimestamp();
    }

    /// <summary>A fair share that never caps (the runtime option turned off, or shared admission).</summary>
    public static FairShare Off { get; } = new(TimeProvider.System, static () => false);

    public TimeProvider Time { get; }

    /// <summary>
    /// The water level, 0 to 1: a capped tenant may have its limit times this. 1 when nobody is capped. The caps of
    /// tenants recovering after the saturation ended may be above it.
    /// </summary>
    public double Level => Volatile.Read(ref _level);

    /// <summary>Whether the gates count their attempts: from the first saturated period until every cap is lifted.</summary>
    internal bool Counting => _counting;

    /// <summary>Starts recomputing the allocation every <see cref="Period"/> over the gates <paramref name="gates"/> returns.</summary>
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
    /// One step of the controller: reads and resets each gate's counts over <paramref name="elapsed"/>.
    /// <list type="bullet">
    /// <item>Not saturated: every cap grows by <see cref="Recovery"/> and is lifted once it reaches the limit; with no cap
    /// left the gates stop counting.</item>
    /// <item>Saturated for <see cref="SaturatedPeriods"/> periods in a row, with at least two contending tenants: water-filling
    /// over what was served plus <see cref="Headroom"/>. Light tenants (<see cref="LightFraction"/>, <see cref="Handful"/>,
    /// <see cref="ClosedLoop"/>) keep what they use and are not capped; the rest is shared among the others in proportion
    /// to their limits.</item>
    /// <item>Fewer than two contending tenants: nobody is capped; one tenant alone has nobody to be fair to.</item>
    /// </list>
    /// A tenant its own limit refused is held at that limit already: capping it would not free the CPU its refusals take,
    /// and the capacity it leaves is not the runtime's. It contends neither as served nor as weight, and is not capped.
    /// A saturated period in which nothing was served says nothing and leaves the caps as they are.
    /// </summary>
    internal void Tick(IEnumerable<FairShareGate> gates, TimeSpan elapsed, bool saturated)
    {
        var seconds = elapsed.TotalSeconds;
        if (seconds <= 0)
        {
            return;
        }
        _saturatedInARow = saturated ? _saturatedInARow + 1 : 0;
        if (!_counting)
        {
            // Nobody was counted or capped: the first saturated period starts the counts the next one reads.
            if (saturated)
            {
                foreach (var gate in gates)
                {
                    gate.TakeCounts();
                }
                _counting = true;
            }
            return;
        }

        var contenders = new List<Contender>();
        var served = 0.0;
        var all = new List<FairShareGate>();
        foreach (var gate in gates)
        {
            all.Add(gate);
            var (attempts, refused, limited, overlapping, held) = gate.TakeCounts();
            if (attempts > 0 && limited == 0)
            {
                // An attempt held for its turn is served, later: it counts as used, and as held back by the cap.
                var used = (attempts - refused) / seconds;
                served += used;
                contenders.Add(new Contender(gate, used, refused + held > 0, Exempt: attempts <= Handful || 2 * overlapping <= attempts));
            }
        }

        if (!saturated)
        {
            Recover(all);
            return;
        }
        if (contenders.Count < 2)
        {
            Lift(all);
            return;
        }
        if (served <= 0 || _saturatedInARow < SaturatedPeriods)
        {
            return;
        }
        Fill(all, contenders, served * (1 + Headroom));
    }

    /// <summary>Water-filling of <paramref name="capacity"/> requests per second over the contending tenants.</summary>
    private void Fill(List<FairShareGate> all, List<Contender> contenders, double capacity)
    {
        // First the exempt, then, smallest use first, every tenant that uses under LightFraction of an equal split of
        // what is left: a tenant that small cannot be what saturates the runtime, whatever its weight. Without this, a
        // neighbour whose limit is a thousand times a tenant's own would leave it a thousandth of the runtime.
        contenders.Sort(static (a, b) => a.Exempt != b.Exempt ? (a.Exempt ? -1 : 1) : a.Used.CompareTo(b.Used));
        var weight = contenders.Sum(static c => c.Gate.Limit);
        var light = 0;
        while (light < contenders.Count)
        {
            var (gate, used, refused, exempt) = contenders[light];
            if (!exempt && (refused || used >= LightFraction * Math.Max(capacity, 0) / (contenders.Count - light)))
            {
                break;
            }
            capacity -= used;
            weight -= gate.Limit;
            light++;
        }
        // Then by weight, lightest first: a tenant light at the level of everyone heavier is light at any level the
        // others leave.
        contenders.Sort(light, contenders.Count - light, ByWeightedUse);
        while (light < contenders.Count)
        {
            var (gate, used, refused, _) = contenders[light];
            var level = Math.Max(capacity, 0) / weight;
            if (refused || used >= LightFraction * gate.Limit * level)
            {
                break;
            }
            capacity -= used;
            weight -= gate.Limit;
            light++;
        }
        var water = light < contenders.Count ? Math.Clamp(Math.Max(capacity, 0) / weight, Floor, 1) : 1;
        Volatile.Write(ref _level, water);
        var heavy = new HashSet<FairShareGate>(contenders.Skip(light).Select(static c => c.Gate));
        foreach (var gate in all)
        {
            gate.Cap(water < 1 && heavy.Contains(gate) ? water : 1);
        }
    }

    private void Recover(List<FairShareGate> all)
    {
        var capped = false;
        foreach (var gate in all)
        {
            if (gate.CapFraction < 1)
            {
                var fraction = Math.Min(gate.CapFraction * Recovery, 1);
                gate.Cap(fraction);
                capped |= fraction < 1;
            }
        }
        Volatile.Write(ref _level, Math.Min(Level * Recovery, 1));
        if (!capped)
        {
            Lift(all);
        }
    }

    private void Lift(List<FairShareGate> all)
    {
        foreach (var gate in all)
        {
            gate.Cap(1);
        }
        Volatile.Write(ref _level, 1);
        _counting = false;
    }

    public void Dispose() => _timer?.Dispose();

    /// <summary>
    /// A tenant that sent in the last period, not held by its own limit: what it used, whether its cap refused it or held
    /// some of its requests for their turn, and
    /// whether it is exempt from capping (it sent only a <see cref="Handful"/>, or it was not concurrent, <see cref="ClosedLoop"/>).
    /// </summary>
    private readonly record struct Contender(FairShareGate Gate, double Used, bool Refused, bool Exempt);
}

/// <summary>
/// One tenant's gate of the <see cref="FairShare"/>: while the tenant is capped, a rate of its limit times its cap
/// fraction, kept as the theoretical arrival time of its next request (a generic cell rate algorithm: one long, one
/// compare-and-swap, no lock and no allocation); and, while the controller counts, the counts of its attempts, of its
/// refusals by the cap, of its refusals by its own limit and of its attempts that overlapped others
/// (<see cref="FairShare.ClosedLoop"/>).
/// </summary>
/// <param name="share">The runtime's fair share.</param>
/// <param name="limit">The tenant's own limit in requests per second: its weight.</param>
/// <param name="bulkhead">The tenant's bulkhead, whose count of requests in flight the gate reads while it counts; null when there is none.</param>
internal sealed class FairShareGate(FairShare share, double limit, Bulkhead? bulkhead = null)
{
    /// <summary>How far ahead of its capped rate a tenant may run: a burst of this much of its capped rate.</summary>
    internal static readonly TimeSpan Tolerance = TimeSpan.FromMilliseconds(100);

    private long _theoreticalArrival = long.MinValue;
    /// <summary>Timestamp ticks between two requests at the capped rate; 0 while the tenant is not capped.</summary>
    private long _interval;
    private int _attempts;
    private int _refused;
    private int _limited;
    private int _overlapping;
    private int _held;
    /// <summary>The tenant's attempts while counting, never reset: an attempt's turn, to tell how many came between two on one connection.</summary>
    private long _turn;

    /// <summary>The tenant's own limit in requests per second: its weight.</summary>
    public double Limit { get; } = Math.Max(limit, 0.001);

    /// <summary>The fraction of its limit the tenant is capped at; 1 when it is not capped.</summary>
    public double CapFraction { get; private set; } = 1;

    /// <summary>Whether the controller counts attempts: only then does an attempt need its <see cref="ConnectionTurn"/>.</summary>
    public bool Counting => share.Counting;

    /// <inheritdoc cref="TryPass(ConnectionTurn?, out TimeSpan)"/>
    public bool TryPass(out TimeSpan retryAfter) => TryPass(null, out retryAfter);

    /// <summary>
    /// True when the tenant is within its cap (always, while it is not capped). While the controller does not count,
    /// this is one read. On refusal, <paramref name="retryAfter"/> says when it will be within it again.
    /// <paramref name="connection"/> is the tenant's last turn on the attempt's connection (or HTTP/2 stream), if known:
    /// with the tenant's requests in flight it tells whether the attempt overlapped others (<see cref="FairShare.ClosedLoop"/>).
    /// </summary>
    public bool TryPass(ConnectionTurn? connection, out TimeSpan retryAfter)
    {
        if (TryPass(connection, TimeSpan.Zero, out var wait))
        {
            retryAfter = TimeSpan.Zero;
            return true;
        }
        retryAfter = wait;
        return false;
    }

    /// <summary>
    /// Like <see cref="TryPass(ConnectionTurn?, out TimeSpan)"/>, but an attempt over the cap may take the tenant's next
    /// free turn at its capped rate when that turn comes within <paramref name="maxWait"/>: it passes, and
    /// <paramref name="wait"/> says how long it must wait first (zero: go now). The turn is taken, so the attempts that
    /// wait are spread at the capped rate, one after another, and the tenant is served exactly its cap however many
    /// requests it keeps waiting: a flood queues behind its own requests. Counted as held by the cap, so the controller
    /// keeps the tenant capped. False: refused, and <paramref name="wait"/> says when the tenant will be within its cap
    /// again.
    /// </summary>
    public bool TryPass(ConnectionTurn? connection, TimeSpan maxWait, out TimeSpan wait)
    {
        wait = TimeSpan.Zero;
        if (!share.Counting)
        {
            return true;
        }
        Interlocked.Increment(ref _attempts);
        if (Overlaps(connection))
        {
            Interlocked.Increment(ref _overlapping);
        }
        var interval = Volatile.Read(ref _interval);
        if (interval == 0)
        {
            return true;
        }
        var time = share.Time;
        var frequency = time.TimestampFrequency;
        var tolerance = (long)(frequency * Tolerance.TotalSeconds);
        var longest = (long)(frequency * maxWait.TotalSeconds);
        var now = time.GetTimestamp();
        while (true)
        {
            var arrival = Volatile.Read(ref _theoreticalArrival);
            var next = Math.Max(arrival, now);
            var early = next - now - tolerance;
            if (early > longest)
            {
                Interlocked.Increment(ref _refused);
                wait = TimeSpan.FromSeconds((double)early / frequency);
                return false;
            }
            if (Interlocked.CompareExchange(ref _theoreticalArrival, next + interval, arrival) == arrival)
            {
                if (early > 0)
                {
                    Interlocked.Increment(ref _held);
                    wait = TimeSpan.FromSeconds((double)early / frequency);
                }
                return true;
            }
        }
    }

    /// <summary>
    /// Like <see cref="TryPass(ConnectionTurn?, out TimeSpan)"/> for an attempt that, refused, is made again the usual
    /// way (which counts it then): passes when the tenant is within its cap now, and a refusal here counts nothing and
    /// takes no turn.
    /// </summary>
    internal bool TryPassAtOnce(ConnectionTurn? connection)
    {
        if (!share.Counting)
        {
            return true;
        }
        var interval = Volatile.Read(ref _interval);
        if (interval != 0)
        {
            var time = share.Time;
            var tolerance = (long)(time.TimestampFrequency * Tolerance.TotalSeconds);
            var now = time.GetTimestamp();
            while (true)
            {
                var arrival = Volatile.Read(ref _theoreticalArrival);
                var next = Math.Max(arrival, now);
                if (next - now - tolerance > 0)
                {
                    return false;
                }
                if (Interlocked.CompareExchange(ref _theoreticalArrival, next + interval, arrival) == arrival)
                {
                    break;
                }
            }
        }
        Interlocked.Increment(ref _attempts);
        if (Overlaps(connection))
        {
            Interlocked.Increment(ref _overlapping);
        }
        return true;
    }

    /// <summary>
    /// Whether this attempt finds more than <see cref="FairShare.ClosedLoop"/> of the tenant's requests in flight, itself
    /// included, or more than that many of its attempts since its last one on the same connection.
    /// </summary>
    private bool Overlaps(ConnectionTurn? connection)
    {
        var overlaps = (bulkhead?.InFlight ?? 0) + 1 > FairShare.ClosedLoop;
        if (connection is not null)
        {
            var turn = Interlocked.Increment(ref _turn);
            // One connection's requests come one after another (HTTP/1.1), as do one pooled HTTP/2 stream's.
            overlaps |= ReferenceEquals(connection.Gate, this) && turn - connection.Turn > FairShare.ClosedLoop;
            connection.Gate = this;
            connection.Turn = turn;
        }
        return overlaps;
    }

    /// <summary>The attempt that passed was refused by the tenant's own limit.</summary>
    public void Limited()
    {
        if (share.Counting)
        {
            Interlocked.Increment(ref _limited);
        }
    }

    /// <summary>Caps the tenant at <paramref name="fraction"/> of its limit; 1 lifts the cap. Called by the controller only.</summary>
    internal void Cap(double fraction)
    {
        CapFraction = fraction;
        Volatile.Write(ref _interval, fraction >= 1 ? 0 : Math.Max(1, (long)(share.Time.TimestampFrequency / (Limit * fraction))));
    }

    /// <summary>
    /// The counts since the last call, reset: attempts, refusals by the cap, refusals by the tenant's own limit, attempts
    /// that overlapped others, and attempts that passed but had to wait for their turn at the capped rate.
    /// </summary>
    internal (int Attempts, int Refused, int Limited, int Overlapping, int Held) TakeCounts() =>
        (Interlocked.Exchange(ref _attempts, 0), Interlocked.Exchange(ref _refused, 0), Interlocked.Exchange(ref _limited, 0),
            Interlocked.Exchange(ref _overlapping, 0), Interlocked.Exchange(ref _held, 0));
}

/// <summary>
/// The last turn of a tenant's attempts (<see cref="FairShareGate"/>) that came on one connection, or one pooled HTTP/2
/// stream: kept with the connection while the fair share counts, so that its next attempt can tell how many of the
/// tenant's attempts came meanwhile on others. A connection's requests come one at a time, so it needs no lock.
/// </summary>
internal sealed class ConnectionTurn
{
    public FairShareGate? Gate { get; set; }

    public long Turn { get; set; }
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
