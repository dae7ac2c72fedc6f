using System.Globalization;
using SharedRuntime.Components;
using SharedRuntime.Configuration;

namespace SharedRuntime.Admission;

/// <summary>
/// What stands between tenants and one shared component instance: a <see cref="BackendBreaker"/> that fails calls at
/// once while the backend is down, and a <see cref="FairQueue"/> that shares the component's concurrent calls between
/// tenants. Every tenant's <see cref="Routing.ComponentRoute"/> to the instance runs its calls through them. One guard per instance, made with its component entry and kept as long as the instance lives (a
/// configuration reload that keeps the instance keeps its guard). Component metadata, read once:
/// <c>maxConcurrentCalls</c> (default 32), <c>maxQueuedCallsPerApp</c> (default 256), <c>backendFailureThreshold</c>
/// (default 5), <c>backendOpenDuration</c> (default 2s).
/// </summary>
public sealed class ComponentGuard
{
    public const int DefaultMaxConcurrentCalls = 32;
    public const int DefaultMaxQueuedPerApp = 256;

    /// <summary>How long an open breaker fails calls before a probe: short enough that a backend back up is used again within seconds.</summary>
    public static readonly TimeSpan DefaultOpenDuration = TimeSpan.FromSeconds(2);

    public ComponentGuard(string componentName, FairQueue queue, BackendBreaker breaker)
    {
        ComponentName = componentName;
        Queue = queue;
        Breaker = breaker;
    }

    public string ComponentName { get; }

    public FairQueue Queue { get; }

    public BackendBreaker Breaker { get; }

    /// <summary>A new guard for a component built from <paramref name="config"/>, its settings read from the component's metadata.</summary>
    public static ComponentGuard Create(ComponentConfig config, TimeProvider time)
    {
        string? concurrentText = null, queuedText = null, thresholdText = null, openText = null;
        foreach (var item in config.Metadata)
        {
            // The first entry of a name counts, as everywhere metadata is read.
            switch (item.Name.ToLowerInvariant())
            {
                case "maxconcurrentcalls":
                    concurrentText ??= item.Value;
                    break;
                case "maxqueuedcallsperapp":
                    queuedText ??= item.Value;
                    break;
                case "backendfailurethreshold":
                    thresholdText ??= item.Value;
                    break;
                case "backendopenduration":
                    openText ??= item.Value;
                    break;
            }
        }
        var open = openText is not null && Durations.TryParse(openText, out var parsed) && parsed > TimeSpan.Zero ? parsed : DefaultOpenDuration;
        return new ComponentGuard(config.Name,
            new FairQueue(PositiveInt(concurrentText, DefaultMaxConcurrentCalls), PositiveInt(queuedText, DefaultMaxQueuedPerApp)),
            new BackendBreaker(PositiveInt(thresholdText, 5), open, time));
    }

    /// <summary>
    /// A failure that says the backend is unwell (unreachable, timed out, a server fault): not an answer about the data
    /// (etag), not a refusal of what the request carries (<see cref="ComponentRequestRejectedException"/>), nor a
    /// refusal here. A tenant that sends data the backend rejects therefore cannot open the breaker for the others.
    /// </summary>
    public static bool IsBackendFailure(Exception ex) => ex switch
    {
        StateETagMismatchException or StateETagInvalidException or ComponentRequestRejectedException => false,
        ComponentException or TimeoutException => true,
        _ => false,
    };

    private static int PositiveInt(string? text, int fallback) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value > 0 ? value : fallback;
}

/// <summary>Why a guard refused a call without running it.</summary>
public enum GuardRefusal
{
    None,

    /// <summary>The backend's breaker is open: calls fail at once until a probe succeeds.</summary>
    BackendUnavailable,

    /// <summary>The app already has as many calls waiting at this component as it may.</summary>
    LineFull,
}

/// <summary>A guarded call's result, or why the guard refused it (then <see cref="Value"/> is default).</summary>
public readonly record struct GuardOutcome<T>(T Value, GuardRefusal Refusal, TimeSpan RetryAfter)
{
    public bool IsRefused => Refusal != GuardRefusal.None;
}
