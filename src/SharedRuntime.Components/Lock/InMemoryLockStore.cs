namespace SharedRuntime.Components.Lock;

/// <summary><c>lock.in-memory</c>: leases that expire after their time (TimeProvider), held per resource id.</summary>
internal sealed class InMemoryLockStore(TimeProvider time) : ILockStore
{
    private readonly Dictionary<string, (string Owner, DateTimeOffset Expires)> _locks = new(StringComparer.Ordinal);
    private readonly System.Threading.Lock _gate = new();

    public IReadOnlyList<string> Capabilities { get; } = [];

    public ValueTask InitAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<bool> TryLockAsync(string resourceId, string owner, TimeSpan expiry, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        lock (_gate)
        {
            if (_locks.TryGetValue(resourceId, out var held) && held.Expires > now)
            {
                return ValueTask.FromResult(false);
            }
            _locks[resourceId] = (owner, now + expiry);
            if (_locks.Count > 1024)
            {
                foreach (var stale in _locks.Where(l => l.Value.Expires <= now).Select(l => l.Key).ToList())
                {
                    _locks.Remove(stale);
                }
            }
            return ValueTask.FromResult(true);
        }
    }

    public ValueTask<UnlockStatus> UnlockAsync(string resourceId, string owner, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        lock (_gate)
        {
            if (!_locks.TryGetValue(resourceId, out var held) || held.Expires <= now)
            {
                return ValueTask.FromResult(UnlockStatus.LockDoesNotExist);
            }
            if (held.Owner != owner)
            {
                return ValueTask.FromResult(UnlockStatus.LockBelongsToOthers);
            }
            _locks.Remove(resourceId);
            return ValueTask.FromResult(UnlockStatus.Success);
        }
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
