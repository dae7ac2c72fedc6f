using SharedRuntime.Components;

namespace SharedRuntime.Admission;

/// <summary>The component's backend failed repeatedly; calls fail fast until a probe succeeds.</summary>
internal sealed class BackendUnavailableException(string component, TimeSpan retryAfter) : ComponentException(MessageFor(component, retryAfter))
{
    public TimeSpan RetryAfter { get; } = retryAfter;

    /// <summary>What an open breaker is answered with, thrown or not.</summary>
    public static string MessageFor(string component, TimeSpan retryAfter) =>
        $"the backend of component {component} is unavailable (failing repeatedly); calls fail fast and it is probed again in {Math.Ceiling(retryAfter.TotalSeconds):0}s";
}
