namespace SharedRuntime.Components;

/// <summary>One configuration value with its version and metadata.</summary>
public sealed record ConfigurationItem(string Value, string Version, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// A configuration store. Keys arrive already prefixed with the tenant (<c>appid||key</c>), like state keys.
/// </summary>
public interface IConfigurationStore : IComponent
{
    /// <summary>The items for <paramref name="keys"/> that exist; all of <paramref name="prefix"/>'s items when keys is empty.</summary>
    ValueTask<IReadOnlyDictionary<string, ConfigurationItem>> GetAsync(string prefix, IReadOnlyList<string> keys, CancellationToken cancellationToken);
}

public enum UnlockStatus { Success = 0, LockDoesNotExist = 1, LockBelongsToOthers = 2, InternalError = 3 }

/// <summary>A distributed lock store. Resource ids arrive already prefixed with the tenant.</summary>
public interface ILockStore : IComponent
{
    ValueTask<bool> TryLockAsync(string resourceId, string owner, TimeSpan expiry, CancellationToken cancellationToken);

    ValueTask<UnlockStatus> UnlockAsync(string resourceId, string owner, CancellationToken cancellationToken);
}

/// <summary>
/// The tenant (the key prefix) already holds as many locks as the store allows it; none of them has expired.
/// <see cref="RetryAfter"/> is the time until the first of them expires.
/// </summary>
public sealed class LockLimitExceededException(string prefix, int limit, TimeSpan retryAfter)
    : ComponentException($"app {prefix} already holds {limit} locks, the most a lock store keeps for one app")
{
    public int Limit { get; } = limit;

    public TimeSpan RetryAfter { get; } = retryAfter;
}
