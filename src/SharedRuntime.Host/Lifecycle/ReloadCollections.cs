using System.Runtime;
using Microsoft.Extensions.Logging;

namespace SharedRuntime.Host.Lifecycle;

/// <summary>What the runtime collects after a reload (<c>--collect-after-reload</c>).</summary>
public enum ReloadCollection
{
    /// <summary>Nothing: the garbage a reload leaves is collected when the heap's own budget says so.</summary>
    None,

    /// <summary>
    /// The young generations: what the reload allocated and let go, cheap whatever the tenant count; and the whole heap
    /// once what survives has grown by <see cref="ReloadCollections.FullAfterGrowth"/> since the last whole collection
    /// (the replaced snapshots' tables, once they reached the old generation).
    /// </summary>
    Young,

    /// <summary>Everything, compacted: the replaced snapshot's tables too, which by then may have reached the old generation.</summary>
    Full,
}

/// <summary>
/// Collects after a burst of reloads, so that a reload leaves the resident memory where it was. Each reload of a large set
/// lets go of the previous snapshot's tables and of what reading the change allocated; with nothing else allocating (an
/// idle runtime) the collector would not get to them for a long time, and every reload would take fresh pages. A burst of
/// reloads collects once, <see cref="QuietTime"/> after its last reload, and at most <see cref="MaxDelay"/> after its
/// first, on a pool thread: never on the reload's own path.
/// </summary>
internal sealed class ReloadCollections : IDisposable
{
    public static readonly TimeSpan QuietTime = TimeSpan.FromMilliseconds(200);
    public static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(2);

    /// <summary>Growth of the live heap since the last whole collection that makes a young collection a whole one.</summary>
    public const long FullAfterGrowth = 2 * 1024 * 1024;

    private static long s_afterFull = GC.GetTotalMemory(false);

    private readonly TimeProvider _time;
    private readonly Action _collect;
    private readonly ITimer _timer;
    private readonly Lock _lock = new();
    private long _firstPending;

    public ReloadCollections(TimeProvider time, Action collect)
    {
        _time = time;
        _collect = collect;
        _timer = time.CreateTimer(static state => ((ReloadCollections)state!).Collect(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>A collection of <paramref name="kind"/> and its log line, or null for <see cref="ReloadCollection.None"/>.</summary>
    public static ReloadCollections? Create(ReloadCollection kind, TimeProvider time, ILogger logger) => kind switch
    {
        ReloadCollection.Young => new ReloadCollections(time, () => Measured(logger, kind, static () =>
        {
            GC.Collect(1, GCCollectionMode.Forced, blocking: true);
            if (GC.GetTotalMemory(false) - Volatile.Read(ref s_afterFull) > FullAfterGrowth)
            {
                CollectAll();
            }
        })),
        ReloadCollection.Full => new ReloadCollections(time, () => Measured(logger, kind, CollectAll)),
        _ => null,
    };

    private static void CollectAll()
    {
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        Volatile.Write(ref s_afterFull, GC.GetTotalMemory(false));
    }

    /// <summary>A reload applied: the collection waits for the burst to end.</summary>
    public void Reloaded()
    {
        lock (_lock)
        {
            var now = _time.GetTimestamp();
            if (_firstPending == 0)
            {
                _firstPending = now;
            }
            var waited = _time.GetElapsedTime(_firstPending, now);
            _timer.Change(waited >= MaxDelay ? TimeSpan.Zero : TimeSpan.FromTicks(Math.Min(QuietTime.Ticks, (MaxDelay - waited).Ticks)), Timeout.InfiniteTimeSpan);
        }
    }

    private void Collect()
    {
        lock (_lock)
        {
            _firstPending = 0;
        }
        _collect();
    }

    private static void Measured(ILogger logger, ReloadCollection kind, Action collect)
    {
        var cpu = Environment.CpuUsage.TotalTime;
        var start = TimeProvider.System.GetTimestamp();
        collect();
        HostLog.ReloadCollected(logger, kind, TimeProvider.System.GetElapsedTime(start).TotalMilliseconds, (Environment.CpuUsage.TotalTime - cpu).TotalMilliseconds,
            GC.GetTotalMemory(false) / (1024.0 * 1024), GC.CollectionCount(2));
    }

    public void Dispose() => _timer.Dispose();
}
