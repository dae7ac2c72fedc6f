using System.Globalization;

namespace SharedRuntime.Components.Lock;

/// <summary>
/// <c>lock.in-memory</c>: leases that expire after their time (TimeProvider), held per resource id and grouped by key
/// prefix (the app). One app holds at most <c>maxLocksPerApp</c> (metadata, default
/// <see cref="DefaultMaxLocksPerApp"/>) live locks; a lock past its expiry is reclaimed when its id is locked again
/// or when its app reaches that bound, so expired locks never count.
/// </summary>
internal sealed class InMemoryLockStore(TimeProvider time, int maxLocksPerApp = InMemoryLockStore.DefaultMaxLocksPerApp) : ILockStore
{
    public const int DefaultMaxLocksPerApp = 1000;

    private readonly Dictionary<string, Dictionary<string, (string Owner, DateTimeOffset Expires)>> _byApp = new(StringComparer.Ordinal);
    private readonly System.Threading.Lock _gate = new();

    public IReadOnlyList<string> Capabilities { get; } = [];

    public int MaxLocksPerApp { get; } = maxLocksPerApp;

    /// <summary>Reads <c>maxLocksPerApp</c> from the component's metadata (a positive whole number).</summary>
    public static InMemoryLockStore Create(ComponentContext context, TimeProvider time)
    {
        var text = context.GetMetadata("maxLocksPerApp");
        if (text is null)
        {
            return new InMemoryLockStore(time);
        }
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var max) && max > 0
            ? new InMemoryLockStore(time, max)
            : throw new ComponentException($"metadata 'maxLocksPerApp' must be a positive whole number, not '{text}'");
    }

    public ValueTask InitAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<bool> TryLockAsync(string resourceId, string owner, TimeSpan expiry, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var app = StateKeys.PrefixOf(resourceId).ToString();
        lock (_gate)
        {
            if (!_byApp.TryGetValue(app, out var locks))
            {
                locks = new Dictionary<string, (string, DateTimeOffset)>(StringComparer.Ordinal);
                _byApp[app] = locks;
            }
            if (locks.TryGetValue(resourceId, out var held))
            {
                if (held.Expires > now)
                {
                    return ValueTask.FromResult(false);
                }
                locks.Remove(resourceId);
            }
            if (locks.Count >= MaxLocksPerApp && Reclaim(locks, now) is { } firstExpiry)
            {
                throw new LockLimitExceededException(app, MaxLocksPerApp, firstExpiry - now);
            }
            locks[resourceId] = (owner, now + expiry);
            return ValueTask.FromResult(true);
        }
    }

    /// <summary>Removes the app's expired locks; when it still holds its bound, the time the first live one expires.</summary>
    private DateTimeOffset? Reclaim(Dictionary<string, (string Owner, DateTimeOffset Expires)> locks, DateTimeOffset now)
    {
        var first = DateTimeOffset.MaxValue;
        foreach (var (id, held) in locks)
        {
            if (held.Expires <= now)
            {
                locks.Remove(id);
            }
            else if (held.Expires < first)
            {
                first = held.Expires;
            }
        }
        return locks.Count >= MaxLocksPerApp ? first : null;
    }

    public ValueTask<UnlockStatus> UnlockAsync(string resourceId, string owner, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var app = StateKeys.PrefixOf(resourceId).ToString();
        lock (_gate)
        {
            if (!_byApp.TryGetValue(app, out var locks) || !locks.TryGetValue(resourceId, out var held))
            {
                return ValueTask.FromResult(UnlockStatus.LockDoesNotExist);
            }
            if (held.Expires <= now)
            {
                Forget(app, locks, resourceId);
                return ValueTask.FromResult(UnlockStatus.LockDoesNotExist);
            }
            if (held.Owner != owner)
            {
                return ValueTask.FromResult(UnlockStatus.LockBelongsToOthers);
            }
            Forget(app, locks, resourceId);
            return ValueTask.FromResult(UnlockStatus.Success);
        }
    }

    private void Forget(string app, Dictionary<string, (string Owner, DateTimeOffset Expires)> locks, string resourceId)
    {
        locks.Remove(resourceId);
        if (locks.Count == 0)
        {
            _byApp.Remove(app);
        }
    }

    /// <summary>Live locks held by <paramref name="app"/> (for tests).</summary>
    internal int HeldBy(string app)
    {
        var now = time.GetUtcNow();
        lock (_gate)
        {
            return _byApp.TryGetValue(app, out var locks) ? locks.Values.Count(l => l.Expires > now) : 0;
        }
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
