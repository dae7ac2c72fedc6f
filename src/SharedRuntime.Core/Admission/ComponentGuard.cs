using System.Globalization;
using System.Runtime.CompilerServices;
using SharedRuntime.Components;
using SharedRuntime.Configuration;

namespace SharedRuntime.Admission;

/// <summary>
/// What stands between tenants and one shared component instance: a <see cref="BackendBreaker"/> that fails calls at
/// once while the backend is down, and a <see cref="FairQueue"/> that shares the component's concurrent calls between
/// tenants. One guard per instance, kept as long as the instance lives (a configuration reload that keeps the instance
/// keeps its guard). Component metadata: <c>maxConcurrentCalls</c> (default 32), <c>maxQueuedCallsPerApp</c>
/// (default 256), <c>backendFailureThreshold</c> (default 5), <c>backendOpenDuration</c> (default 2s).
/// </summary>
public sealed class ComponentGuard
{
    public const int DefaultMaxConcurrentCalls = 32;
    public const int DefaultMaxQueuedPerApp = 256;

    /// <summary>How long an open breaker fails calls before a probe: short enough that a backend back up is used again within seconds.</summary>
    public static readonly TimeSpan DefaultOpenDuration = TimeSpan.FromSeconds(2);
    private static readonly ConditionalWeakTable<IComponent, ComponentGuard> Guards = [];

    public ComponentGuard(string componentName, FairQueue queue, BackendBreaker breaker)
    {
        ComponentName = componentName;
        Queue = queue;
        Breaker = breaker;
    }

    public string ComponentName { get; }

    public FairQueue Queue { get; }

    public BackendBreaker Breaker { get; }

    /// <summary>The guard of <paramref name="instance"/>, made from <paramref name="config"/> the first time.</summary>
    public static ComponentGuard For(IComponent instance, ComponentConfig config, TimeProvider time) =>
        Guards.GetValue(instance, _ => Create(config, time));

    private static ComponentGuard Create(ComponentConfig config, TimeProvider time)
    {
        var queue = new FairQueue(
            PositiveInt(config, "maxConcurrentCalls", DefaultMaxConcurrentCalls),
            PositiveInt(config, "maxQueuedCallsPerApp", DefaultMaxQueuedPerApp));
        var openText = Value(config, "backendOpenDuration");
        var open = openText is not null && Durations.TryParse(openText, out var parsed) && parsed > TimeSpan.Zero ? parsed : DefaultOpenDuration;
        var breaker = new BackendBreaker(PositiveInt(config, "backendFailureThreshold", 5), open, time);
        return new ComponentGuard(config.Name, queue, breaker);
    }

    /// <summary>
    /// Runs one call into the component for <paramref name="appId"/>. Throws <see cref="BackendUnavailableException"/>
    /// at once while the breaker is open and <see cref="FairQueueFullException"/> when the app's line is full.
    /// </summary>
    public async ValueTask<T> RunAsync<T, TState>(string appId, TState state, Func<TState, CancellationToken, ValueTask<T>> call, CancellationToken cancellationToken)
    {
        if (!Breaker.TryAcquire(out var retryAfter))
        {
            throw new BackendUnavailableException(ComponentName, retryAfter);
        }
        try
        {
            var result = await Queue.RunAsync(appId, state, call, cancellationToken).ConfigureAwait(false);
            Breaker.RecordSuccess();
            return result;
        }
        catch (Exception ex) when (IsBackendFailure(ex))
        {
            Breaker.RecordFailure();
            throw;
        }
        catch
        {
            Breaker.RecordNeutral();
            throw;
        }
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

    private static string? Value(ComponentConfig config, string name) =>
        config.Metadata.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase))?.Value;

    private static int PositiveInt(ComponentConfig config, string name, int fallback) =>
        int.TryParse(Value(config, name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value > 0 ? value : fallback;
}

/// <summary>The component's backend failed repeatedly; calls fail at once until a probe succeeds.</summary>
public sealed class BackendUnavailableException(string component, TimeSpan retryAfter)
    : ComponentException($"the backend of component {component} is unavailable (failing repeatedly); calls fail fast and it is probed again in {Math.Ceiling(retryAfter.TotalSeconds):0}s")
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}
