namespace SharedRuntime.Kubernetes.Watching;

/// <summary>
/// Exponential backoff with full jitter, capped: the wait before the next attempt after a failure is random in
/// [base/2, min(cap, base * 2^failures)], so many runtimes that lost the API server together do not return together.
/// </summary>
internal sealed class ReconnectBackoff(TimeSpan initial, TimeSpan cap)
{
    private int _failures;

    public int Failures => _failures;

    public TimeSpan Next()
    {
        var exponent = Math.Min(_failures++, 20);
        var ceiling = Math.Min(cap.TotalMilliseconds, initial.TotalMilliseconds * Math.Pow(2, exponent));
        var floor = Math.Min(initial.TotalMilliseconds / 2, ceiling);
        return TimeSpan.FromMilliseconds(floor + (Random.Shared.NextDouble() * (ceiling - floor)));
    }

    public void Reset() => _failures = 0;
}
