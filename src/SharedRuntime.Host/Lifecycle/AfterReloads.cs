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
    /// once what survives has grown by <see cref="AfterReloads.FullAfterGrowth"/> since the last whole collection
    /// (the replaced snapshots' tables, once they reached the old generation).
    /// </summary>
    Young,

    /// <summary>Everything, compacted: the replaced snapshot's tables too, which by then may have reached the old generation.</summary>
    Full,
}

/// <summary>
/// What the runtime does once a burst of reloads has settled, so that a reload leaves the resident memory where it was:
/// <list type="bullet">
/// <item>collect (<c>--collect-after-reload</c>, the young generations by default). Each reload of a large set lets go of the previous
/// snapshot's tables and of what reading the change allocated; with nothing else allocating (an idle runtime) the
/// collector would not get to them for a long time.</item>
/// <item>give back again the executable's pages that start-up gave back and the reload touched
/// (<c>--release-pages-after-reload</c>, on by default; <see cref="StartupPages.ReleaseAgain"/>): a few <c>madvise</c>
/// calls, after the collection, since a collection walks the stacks and touches the executable's unwind tables.</item>
/// </list>
/// A burst of reloads does this once, <see cref="QuietTime"/> after its last reload, and at most <see cref="MaxDelay"/>
/// after its first, on a pool thread: never on the reload's own path, nor on a request's.
/// </summary>
internal sealed class AfterReloads : IDisposable
{
    public static readonly TimeSpan QuietTime = TimeSpan.FromMilliseconds(200);
    public static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(2);

    /// <summary>Growth of the live heap since the last whole collection that makes a young collection a whole one.</summary>
    public const long FullAfterGrowth = 2 * 1024 * 1024;

    private static long s_afterFull = GC.GetTotalMemory(false);

    private readonly TimeProvider _time;
    private readonly Action _settle;
    private readonly ITimer _timer;
    private readonly Lock _lock = new();
    private long _firstPending;

    /// <param name="settle">What a settled burst runs.</param>
    public AfterReloads(TimeProvider time, Action settle)
    {
        _time = time;
        _settle = settle;
        _timer = time.CreateTimer(static state => ((AfterReloads)state!).Settle(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>
    /// A collection of <paramref name="kind"/> and its log line, then <paramref name="pages"/> given back again if not
    /// null; or null when there is nothing to do.
    /// </summary>
    public static AfterReloads? Create(ReloadCollection kind, StartupPages? pages, TimeProvider time, ILogger logger)
    {
        Action? collect = kind switch
        {
            ReloadCollection.Young => () => Measured(logger, kind, static () =>
            {
                GC.Collect(1, GCCollectionMode.Forced, blocking: true);
                if (GC.GetTotalMemory(false) - Volatile.Read(ref s_afterFull) > FullAfterGrowth)
                {
                    CollectAll();
                }
            }),
            ReloadCollection.Full => () => Measured(logger, kind, CollectAll),
            _ => null,
        };
        return Create(collect, pages is null ? null : () =>
        {
            var start = TimeProvider.System.GetTimestamp();
            pages.ReleaseAgain();
            HostLog.PagesReleasedAfterReload(logger, pages.ReleasedMappings, TimeProvider.System.GetElapsedTime(start).TotalMilliseconds);
        }, time);
    }

    /// <summary>
    /// <paramref name="collect"/> then <paramref name="releasePages"/> once per burst: in that order, since a collection
    /// walks the threads' stacks and so touches the executable's unwind tables. Null when both are null.
    /// </summary>
    internal static AfterReloads? Create(Action? collect, Action? releasePages, TimeProvider time)
    {
        Action? settle = collect is null ? releasePages
            : releasePages is null ? collect
            : () =>
            {
                collect();
                releasePages();
            };
        return settle is null ? null : new AfterReloads(time, settle);
    }

    private static void CollectAll()
    {
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        Volatile.Write(ref s_afterFull, GC.GetTotalMemory(false));
    }

    /// <summary>A reload applied: what follows waits for the burst to end.</summary>
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

    private void Settle()
    {
        lock (_lock)
        {
            _firstPending = 0;
        }
        _settle();
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
