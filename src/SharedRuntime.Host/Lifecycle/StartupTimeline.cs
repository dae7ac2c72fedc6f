using System.Globalization;
using System.Runtime;

namespace SharedRuntime.Host.Lifecycle;

/// <summary>
/// Where start-up time goes, phase by phase (building the host, loading the resources, starting the listeners),
/// logged at Debug once the runtime is ready, with what start-up allocated and how many collections it took.
/// </summary>
internal sealed class StartupTimeline(TimeProvider time)
{
    private readonly List<(string Phase, TimeSpan Elapsed)> _phases = [];
    private readonly long _started = time.GetTimestamp();
    private long _last = -1;

    /// <summary>Ends the phase named <paramref name="phase"/>, which began when the previous one ended.</summary>
    public void Mark(string phase)
    {
        var now = time.GetTimestamp();
        lock (_phases)
        {
            _phases.Add((phase, time.GetElapsedTime(_last < 0 ? _started : _last, now)));
            _last = now;
        }
    }

    public TimeSpan Total => time.GetElapsedTime(_started);

    public string Phases()
    {
        lock (_phases)
        {
            return string.Join(", ", _phases.Select(static p => string.Create(CultureInfo.InvariantCulture, $"{p.Phase} {p.Elapsed.TotalMilliseconds:0.0} ms")));
        }
    }
}

/// <summary>
/// Start-up allocates a few megabytes of objects that mostly live on (the container, routes, resource snapshots), and
/// each collection made meanwhile only copies them from generation to generation. No collection is needed before the
/// runtime is ready: they are held off until then (a no-GC region), and the full compacting collection made once ready
/// frees what start-up left behind. Start-up that allocates more than the budget (thousands of tenants) simply
/// collects as usual from there on.
/// </summary>
internal static class StartupCollections
{
    private const long Budget = 64L * 1024 * 1024;

    public static void HoldOff()
    {
        try
        {
            GC.TryStartNoGCRegion(Budget, disallowFullBlockingGC: true);
        }
        catch (Exception ex) when (ex is ArgumentOutOfRangeException or InvalidOperationException)
        {
            // A budget the heap cannot give, or a region already started: start-up collects as usual.
        }
    }

    public static void Resume()
    {
        if (GCSettings.LatencyMode != GCLatencyMode.NoGCRegion)
        {
            return;
        }
        try
        {
            GC.EndNoGCRegion();
        }
        catch (InvalidOperationException)
        {
            // The budget ran out (a collection already ended the region).
        }
    }
}
