namespace SharedRuntime.Components;

public enum StateConcurrency { Unspecified, FirstWrite, LastWrite }

internal enum StateConsistency { Unspecified, Eventual, Strong }

/// <summary>One stored value. <see cref="ETag"/> changes on every write.</summary>
public sealed record StateEntry(string Key, ReadOnlyMemory<byte> Value, string ETag, DateTimeOffset? ExpiresAt = null, string? ContentType = null);

/// <summary>A write of one key. <see cref="Key"/> is the full stored key (tenant prefix included).</summary>
public sealed record StateSetRequest(
    string Key,
    ReadOnlyMemory<byte> Value,
    string? ETag = null,
    StateConcurrency Concurrency = StateConcurrency.Unspecified,
    TimeSpan? Ttl = null,
    string? ContentType = null);

/// <summary>A delete of one key. <see cref="Key"/> is the full stored key (tenant prefix included).</summary>
public sealed record StateDeleteRequest(string Key, string? ETag = null, StateConcurrency Concurrency = StateConcurrency.Unspecified);

/// <summary>One operation of a transaction: exactly one of <see cref="Set"/> and <see cref="Delete"/> is set.</summary>
public sealed record StateOperation(StateSetRequest? Set, StateDeleteRequest? Delete)
{
    public string Key => Set?.Key ?? Delete!.Key;
}

/// <summary>
/// Keys and bytes stored under one key prefix. What one stored key costs is <see cref="Of(string, int, string?)"/>:
/// the UTF-8 bytes of the stored key (tenant prefix included), the value's bytes and the UTF-8 bytes of its stored
/// content type. Every store counts with this measure (a store that counts on its server, such as in SQL or Lua, counts
/// the same three lengths), and a row counts until it is deleted, expired or not.
/// </summary>
public readonly record struct StateUsage(long Keys, long Bytes)
{
    public static StateUsage operator +(StateUsage a, StateUsage b) => new(a.Keys + b.Keys, a.Bytes + b.Bytes);

    public static StateUsage operator -(StateUsage a, StateUsage b) => new(a.Keys - b.Keys, a.Bytes - b.Bytes);

    /// <summary>One stored key: its key, value and content type bytes.</summary>
    public static StateUsage Of(string storedKey, int valueLength, string? contentType) =>
        new(1, (long)System.Text.Encoding.UTF8.GetByteCount(storedKey) + valueLength + (contentType is null ? 0 : System.Text.Encoding.UTF8.GetByteCount(contentType)));

    /// <summary>What <paramref name="request"/> stores once written.</summary>
    public static StateUsage Of(StateSetRequest request) => Of(request.Key, request.Value.Length, request.ContentType);

    /// <summary>What <paramref name="entry"/> holds in its store.</summary>
    public static StateUsage Of(StateEntry entry) => Of(entry.Key, entry.Value.Length, entry.ContentType);
}

/// <summary>
/// What one write may leave stored under <see cref="Prefix"/> in one store: at most <see cref="MaxKeys"/> keys and
/// <see cref="MaxBytes"/> bytes (counted as <see cref="StateUsage.Of(string, int, string?)"/> counts them).
/// </summary>
public readonly record struct StateAllowance(string Prefix, long MaxKeys, long MaxBytes)
{
    /// <summary>No limit: the write is never refused for its size.</summary>
    public static StateAllowance Unlimited(string prefix) => new(prefix, long.MaxValue, long.MaxValue);

    public bool IsUnlimited => MaxKeys == long.MaxValue && MaxBytes == long.MaxValue;

    /// <summary>Throws <see cref="StateQuotaExceededException"/> when <paramref name="change"/> grows <paramref name="usage"/> past the allowance.</summary>
    public void Check(StateUsage usage, StateUsage change)
    {
        if (change.Keys > 0 && usage.Keys + change.Keys > MaxKeys)
        {
            throw StateQuotaExceededException.Keys(change.Keys, usage.Keys, MaxKeys);
        }
        if (change.Bytes > 0 && usage.Bytes + change.Bytes > MaxBytes)
        {
            throw StateQuotaExceededException.Bytes(change.Bytes, usage.Bytes, MaxBytes);
        }
    }
}

/// <summary>
/// A key/value state store. Keys arrive already prefixed (<c>appid||key</c>); a store never interprets them
/// beyond <see cref="StateKeys.PrefixOf"/> for usage accounting.
/// Etag rules (Dapr): when an etag is given it must match the stored one, unless concurrency is last-write;
/// first-write without an etag only creates keys that do not exist yet.
/// </summary>
public interface IStateStore : IComponent
{
    /// <summary>The stored entry, or null when the key does not exist or has expired.</summary>
    ValueTask<StateEntry?> GetAsync(string key, CancellationToken cancellationToken);

    /// <summary>Writes one key and returns its new etag. Throws <see cref="StateETagMismatchException"/> or <see cref="StateETagInvalidException"/>.</summary>
    ValueTask<string> SetAsync(StateSetRequest request, CancellationToken cancellationToken);

    /// <summary>Deletes one key; deleting a missing key without an etag succeeds. Throws the etag exceptions like SetAsync.</summary>
    ValueTask DeleteAsync(StateDeleteRequest request, CancellationToken cancellationToken);

    /// <summary>Applies all operations atomically: all or none. Throws the etag exceptions like SetAsync.</summary>
    ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, CancellationToken cancellationToken);

    /// <summary>
    /// Keys and bytes currently stored under <paramref name="prefix"/> (the part before <c>||</c>). The shipped stores keep
    /// this figure with their data and read it in O(1); it is computed by one scan only the first time a prefix written
    /// before usage was kept is touched (seeding).
    /// </summary>
    ValueTask<StateUsage> GetUsageAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>
    /// <see cref="TransactAsync(IReadOnlyList{StateOperation}, CancellationToken)"/> within <paramref name="allowance"/>: the
    /// store refuses the whole write with <see cref="StateQuotaExceededException"/>, changing nothing, when the allowance's
    /// prefix would hold more keys or bytes than allowed once the operations are applied. A write that does not grow a
    /// figure is never refused for it. The shipped stores check and write atomically, in the same script or database
    /// transaction, so writers on several nodes cannot overshoot together. This default (for stores that keep no usage)
    /// checks first and writes after, which is not atomic.
    /// </summary>
    async ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, StateAllowance allowance, CancellationToken cancellationToken)
    {
        if (!allowance.IsUnlimited)
        {
            var usage = await GetUsageAsync(allowance.Prefix, cancellationToken).ConfigureAwait(false);
            var change = default(StateUsage);
            var final = new Dictionary<string, StateSetRequest?>(StringComparer.Ordinal);
            foreach (var operation in operations)
            {
                final[operation.Key] = operation.Set;
            }
            foreach (var (key, set) in final)
            {
                var existing = await GetAsync(key, cancellationToken).ConfigureAwait(false);
                change += (set is null ? default : StateUsage.Of(set)) - (existing is null ? default : StateUsage.Of(existing));
            }
            allowance.Check(usage, change);
        }
        await TransactAsync(operations, cancellationToken).ConfigureAwait(false);
    }
}
