namespace SharedRuntime.Components;

public enum UnlockStatus { Success = 0, LockDoesNotExist = 1, LockBelongsToOthers = 2, InternalError = 3 }

/// <summary>A distributed lock store. Resource ids arrive already prefixed with the tenant.</summary>
internal interface ILockStore : IComponent
{
    ValueTask<bool> TryLockAsync(string resourceId, string owner, TimeSpan expiry, CancellationToken cancellationToken);

    ValueTask<UnlockStatus> UnlockAsync(string resourceId, string owner, CancellationToken cancellationToken);
}

/// <summary>
/// The tenant (the key prefix) already holds as many locks as the store allows it; none of them has expired.
/// <see cref="RetryAfter"/> is the time until the first of them expires. A refusal of this request, not a failure of the
/// store: breakers never count it.
/// </summary>
internal sealed class LockLimitExceededException(string prefix, int limit, TimeSpan retryAfter)
    : ComponentRequestRejectedException($"app {prefix} already holds {limit} locks, the most a lock store keeps for one app")
{
    public int Limit { get; } = limit;

    public TimeSpan RetryAfter { get; } = retryAfter;
}
