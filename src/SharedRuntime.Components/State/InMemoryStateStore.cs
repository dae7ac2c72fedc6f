using System.Collections.Concurrent;
using System.Globalization;

namespace SharedRuntime.Components.State;

/// <summary>
/// <c>state.in-memory</c>: a dictionary. Reads take no lock; writes and transactions are serialised, which keeps
/// etag checks and per-prefix usage (<see cref="StateUsage.Of(string, int, string?)"/>) exact. Expired keys are invisible
/// at once, count toward usage until removed, and are removed by the sweep that runs before a write or a usage read
/// (at most once a second).
/// </summary>
internal sealed class InMemoryStateStore(TimeProvider time) : IStateStore
{
    private sealed record Item(byte[] Value, long Version, DateTimeOffset? ExpiresAt, string? ContentType);

    private readonly ConcurrentDictionary<string, Item> _items = new(StringComparer.Ordinal);
    private readonly Dictionary<string, StateUsage> _usage = new(StringComparer.Ordinal);
    private readonly System.Threading.Lock _writeLock = new();
    private long _version;
    private DateTimeOffset _nextSweep;

    public IReadOnlyList<string> Capabilities { get; } = ["ETAG", "TRANSACTIONAL", "TTL"];

    public ValueTask InitAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<StateEntry?> GetAsync(string key, CancellationToken cancellationToken)
    {
        if (_items.TryGetValue(key, out var item) && !IsExpired(item))
        {
            return ValueTask.FromResult<StateEntry?>(new StateEntry(key, item.Value, item.Version.ToString(CultureInfo.InvariantCulture), item.ExpiresAt, item.ContentType));
        }
        return ValueTask.FromResult<StateEntry?>(null);
    }

    public ValueTask<string> SetAsync(StateSetRequest request, CancellationToken cancellationToken)
    {
        lock (_writeLock)
        {
            Sweep();
            CheckSet(request);
            return ValueTask.FromResult(ApplySet(request));
        }
    }

    public ValueTask DeleteAsync(StateDeleteRequest request, CancellationToken cancellationToken)
    {
        lock (_writeLock)
        {
            Sweep();
            CheckDelete(request);
            Remove(request.Key);
        }
        return ValueTask.CompletedTask;
    }

    public ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, CancellationToken cancellationToken) =>
        TransactAsync(operations, StateAllowance.Unlimited(""), cancellationToken);

    public ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, StateAllowance allowance, CancellationToken cancellationToken)
    {
        lock (_writeLock)
        {
            Sweep();
            if (!allowance.IsUnlimited)
            {
                allowance.Check(_usage.GetValueOrDefault(allowance.Prefix), ChangeOf(operations, allowance.Prefix));
            }
            // Check every operation against the state as the earlier operations leave it, before changing anything.
            var shadow = new Dictionary<string, Item?>(StringComparer.Ordinal);
            foreach (var operation in operations)
            {
                var current = shadow.TryGetValue(operation.Key, out var pending) ? pending : Live(operation.Key);
                if (operation.Set is { } set)
                {
                    ETagCondition.For(set).Verify(set.Key, current?.Version);
                    shadow[set.Key] = new Item([], 0, null, null);
                }
                else
                {
                    var delete = operation.Delete!;
                    ETagCondition.For(delete).Verify(delete.Key, current?.Version);
                    shadow[delete.Key] = null;
                }
            }
            foreach (var operation in operations)
            {
                if (operation.Set is { } set)
                {
                    ApplySet(set);
                }
                else
                {
                    Remove(operation.Delete!.Key);
                }
            }
        }
        return ValueTask.CompletedTask;
    }

    public ValueTask<StateUsage> GetUsageAsync(string prefix, CancellationToken cancellationToken)
    {
        lock (_writeLock)
        {
            Sweep();
            return ValueTask.FromResult(_usage.GetValueOrDefault(prefix));
        }
    }

    /// <summary>How <paramref name="operations"/> change the usage of <paramref name="prefix"/> (an expired key still stored counts as stored).</summary>
    private StateUsage ChangeOf(IReadOnlyList<StateOperation> operations, string prefix)
    {
        var final = new Dictionary<string, StateSetRequest?>(StringComparer.Ordinal);
        foreach (var operation in operations)
        {
            final[operation.Key] = operation.Set;
        }
        var change = default(StateUsage);
        foreach (var (key, set) in final)
        {
            if (!StateKeys.PrefixOf(key).SequenceEqual(prefix.AsSpan()))
            {
                continue;
            }
            change += set is null ? default : StateUsage.Of(set);
            if (_items.TryGetValue(key, out var old))
            {
                change -= StateUsage.Of(key, old.Value.Length, old.ContentType);
            }
        }
        return change;
    }

    private Item? Live(string key) => _items.TryGetValue(key, out var item) && !IsExpired(item) ? item : null;

    private bool IsExpired(Item item) => item.ExpiresAt is { } at && at <= time.GetUtcNow();

    private void CheckSet(StateSetRequest request) => ETagCondition.For(request).Verify(request.Key, Live(request.Key)?.Version);

    private void CheckDelete(StateDeleteRequest request) => ETagCondition.For(request).Verify(request.Key, Live(request.Key)?.Version);

    private string ApplySet(StateSetRequest request)
    {
        var version = ++_version;
        DateTimeOffset? expires = request.Ttl is { } ttl ? time.GetUtcNow() + ttl : null;
        var item = new Item(request.Value.ToArray(), version, expires, request.ContentType);
        Remove(request.Key);
        _items[request.Key] = item;
        Account(request.Key, StateUsage.Of(request.Key, item.Value.Length, item.ContentType));
        return version.ToString(CultureInfo.InvariantCulture);
    }

    private void Remove(string key)
    {
        if (_items.TryRemove(key, out var old))
        {
            Account(key, default(StateUsage) - StateUsage.Of(key, old.Value.Length, old.ContentType));
        }
    }

    private void Account(string key, StateUsage change)
    {
        var prefix = StateKeys.PrefixOf(key).ToString();
        var usage = _usage.GetValueOrDefault(prefix) + change;
        if (usage.Keys == 0)
        {
            _usage.Remove(prefix);
        }
        else
        {
            _usage[prefix] = usage;
        }
    }

    /// <summary>Removes expired keys, at most once a second (under the write lock).</summary>
    private void Sweep()
    {
        var now = time.GetUtcNow();
        if (now < _nextSweep)
        {
            return;
        }
        _nextSweep = now + TimeSpan.FromSeconds(1);
        foreach (var (key, item) in _items)
        {
            if (item.ExpiresAt is { } at && at <= now)
            {
                Remove(key);
            }
        }
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
