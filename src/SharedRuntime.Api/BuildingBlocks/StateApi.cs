using System.Globalization;
using SharedRuntime.Admission;
using SharedRuntime.Components;
using SharedRuntime.Routing;
using SharedRuntime.Tenancy;

namespace SharedRuntime.BuildingBlocks;

/// <summary>One item to save, as the app wrote it (key without the tenant prefix).</summary>
internal sealed record StateSaveItem(string Key, ReadOnlyMemory<byte> Value, string? ETag, StateConcurrency Concurrency, IReadOnlyDictionary<string, string>? Metadata, string? ContentType = null);

/// <summary>One transaction operation, as the app wrote it.</summary>
internal sealed record StateTransactionItem(bool IsDelete, StateSaveItem Item)
{
    /// <summary>
    /// The operation Dapr names <paramref name="operation"/> (<c>upsert</c> or <c>delete</c>) on <paramref name="item"/>,
    /// for both transports: an operation without its request is malformed, and another operation is not supported.
    /// </summary>
    public static StateTransactionItem Of(string? operation, StateSaveItem? item) => operation switch
    {
        "upsert" or "delete" when item is null => throw Errors.Malformed($"transaction operation {operation} has no request"),
        "upsert" => new StateTransactionItem(false, item),
        "delete" => new StateTransactionItem(true, item),
        _ => throw new DaprApiException(400, "ERR_NOT_SUPPORTED_STATE_OPERATION", $"operation type {operation} not supported"),
    };
}

/// <summary>
/// A bulk get result for one key: <paramref name="Key"/> as the app named it; <paramref name="Entry"/> as the store
/// holds it (its own key carries the tenant prefix and is never answered).
/// </summary>
internal sealed record BulkStateItem(string Key, StateEntry? Entry, string? Error);

/// <summary>
/// The state building block for one tenant, shared by the HTTP and gRPC APIs: finds the store among the tenant's
/// compiled routes, prefixes keys with the app-id, gives the store the tenant's quota allowance, and maps store
/// failures to Dapr errors. Every call into a store runs through its route: the tenant's Resiliency outbound policy
/// for the store, when it has one, then the store's guard: a breaker that fails calls at once while its backend is
/// down, and fair shares of its concurrent calls per app (a full line is 429 ERR_TENANT_BACKEND_BUSY).
/// </summary>
internal sealed class StateApi(TimeProvider time)
{
    /// <summary>The longest key an app may name, in UTF-8 bytes (without the tenant prefix); longer is 400 ERR_MALFORMED_REQUEST.</summary>
    public const int MaxKeyBytes = 1024;

    /// <summary>The longest <c>metadata.contentType</c> stored with a value, in characters (printable ASCII only); longer is 400 ERR_MALFORMED_REQUEST.</summary>
    public const int MaxContentTypeLength = 256;

    public IStateStore GetStore(TenantContext tenant, string storeName) => Find(tenant, storeName).Store;

    /// <summary>
    /// The tenant's route to state store <paramref name="storeName"/>. As Dapr: a tenant that sees no state store at all
    /// gets 500 ERR_STATE_STORE_NOT_CONFIGURED (FAILED_PRECONDITION over gRPC), one naming a store it does not see 400
    /// ERR_STATE_STORE_NOT_FOUND, whether the store does not exist, is another building block or is scoped to others.
    /// </summary>
    private static (ComponentRoute Route, IStateStore Store) Find(TenantContext tenant, string storeName)
    {
        var stores = tenant.Routes.State;
        if (!stores.TryFind(storeName, out var route))
        {
            throw stores.IsEmpty
                ? new DaprApiException(500, "ERR_STATE_STORE_NOT_CONFIGURED", $"state store {storeName} is not configured")
                : new DaprApiException(400, "ERR_STATE_STORE_NOT_FOUND", $"state store {storeName} is not found");
        }
        if (route.Instance is not IStateStore store)
        {
            throw new DaprApiException(500, "ERR_STATE_STORE_NOT_CONFIGURED", $"state store {storeName} is not available: {route.Component.Error}");
        }
        return (route, store);
    }

    /// <summary>
    /// The store's guard refused the call without running it: a full line for the tenant is 429, try again in a second;
    /// an open breaker is the operation's own 500 error (<paramref name="code"/>, after <paramref name="context"/>).
    /// </summary>
    private static DaprApiException Refused<T>(ComponentRoute route, GuardOutcome<T> outcome, string storeName, string code, string context)
    {
        var reason = route.Describe(outcome.Refusal, outcome.RetryAfter);
        return outcome.Refusal == GuardRefusal.LineFull
            ? new DaprApiException(429, "ERR_TENANT_BACKEND_BUSY", $"state store {storeName} is busy: {reason}") { RetryAfterSeconds = 1 }
            : new DaprApiException(500, code, $"{context}: {reason}");
    }

    /// <summary>A call that answers nothing, as a guarded call's result.</summary>
    private static async ValueTask<bool> Done(ValueTask call)
    {
        await call.ConfigureAwait(false);
        return true;
    }

    public static string StoredKey(TenantContext tenant, string key)
    {
        if (string.IsNullOrEmpty(key))
        {
            throw Errors.Malformed("state key is empty");
        }
        if (key.Length > MaxKeyBytes || (key.Length > MaxKeyBytes / 3 && System.Text.Encoding.UTF8.GetByteCount(key) > MaxKeyBytes))
        {
            throw Errors.Malformed($"state key is longer than {MaxKeyBytes} bytes");
        }
        if (key.Contains(StateKeys.Separator, StringComparison.Ordinal))
        {
            throw Errors.Malformed($"input key/keyPrefix '{key}' can't contain '{StateKeys.Separator}'");
        }
        return string.Concat(tenant.StatePrefix, key);
    }

    /// <summary>
    /// Dapr's concurrency option as HTTP writes it (a save item's <c>options.concurrency</c>, a delete's
    /// <c>?concurrency=</c>): none, <c>first-write</c> or <c>last-write</c>; anything else is 400 ERR_MALFORMED_REQUEST,
    /// on a save and on a delete alike.
    /// </summary>
    public static StateConcurrency ParseConcurrency(string? text) => text switch
    {
        null or "" => StateConcurrency.Unspecified,
        "first-write" => StateConcurrency.FirstWrite,
        "last-write" => StateConcurrency.LastWrite,
        _ => throw Errors.Malformed($"unknown concurrency '{text}' (first-write or last-write)"),
    };

    /// <summary>
    /// The entry as the store holds it, or null. Its key is the stored one, with the tenant prefix: callers answer with
    /// its value, etag, content type and expiry, never its key (no copy is made to rename it).
    /// </summary>
    public async ValueTask<StateEntry?> GetAsync(TenantContext tenant, string storeName, string key, CancellationToken cancellationToken)
    {
        var (route, store) = Find(tenant, storeName);
        var storedKey = StoredKey(tenant, key);
        GuardOutcome<StateEntry?> outcome;
        try
        {
            outcome = await route.RunGuardedAsync((store, storedKey), static (s, ct) => s.store.GetAsync(s.storedKey, ct), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not DaprApiException and not OperationCanceledException)
        {
            throw new DaprApiException(ex is ComponentRequestRejectedException ? 400 : 500, "ERR_STATE_GET", $"fail to get {key} from state store {storeName}: {ex.Message}", ex);
        }
        if (outcome.IsRefused)
        {
            throw Refused(route, outcome, storeName, "ERR_STATE_GET", $"fail to get {key} from state store {storeName}");
        }
        return outcome.Value;
    }

    /// <summary>Most keys one bulk get may name (duplicates included); beyond is 400 ERR_TENANT_TOO_MANY_KEYS.</summary>
    public const int MaxBulkKeys = 1000;

    /// <summary>
    /// Reads every distinct key once, in the order first named; each value read is charged to
    /// <paramref name="memory"/> before it is kept, so an answer that would not fit the tenant's budget is refused
    /// (<c>ERR_TENANT_MEMORY_BUDGET</c>) before any of it is sent.
    /// </summary>
    public async ValueTask<IReadOnlyList<BulkStateItem>> GetBulkAsync(TenantContext tenant, string storeName, IReadOnlyList<string> keys, int parallelism,
        RequestMemory? memory, CancellationToken cancellationToken)
    {
        if (keys.Count > MaxBulkKeys)
        {
            throw new DaprApiException(400, "ERR_TENANT_TOO_MANY_KEYS", $"a bulk get names at most {MaxBulkKeys} keys, not {keys.Count}");
        }
        var (route, store) = Find(tenant, storeName);
        var seen = new HashSet<string>(keys.Count, StringComparer.Ordinal);
        var distinct = new List<string>(keys.Count);
        foreach (var key in keys)
        {
            if (seen.Add(key))
            {
                distinct.Add(key);
            }
        }
        var storedKeys = distinct.Select(k => StoredKey(tenant, k)).ToArray();
        var results = new BulkStateItem[distinct.Count];
        await Parallel.ForAsync(0, distinct.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Clamp(parallelism, 1, 16), CancellationToken = cancellationToken },
            async (i, ct) =>
            {
                GuardOutcome<StateEntry?> outcome;
                try
                {
                    outcome = await route.RunGuardedAsync((store, storedKey: storedKeys[i]), static (s, token) => s.store.GetAsync(s.storedKey, token), ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    results[i] = new BulkStateItem(distinct[i], null, ex.Message);
                    return;
                }
                if (outcome.IsRefused)
                {
                    results[i] = new BulkStateItem(distinct[i], null, route.Describe(outcome.Refusal, outcome.RetryAfter));
                    return;
                }
                var entry = outcome.Value;
                if (entry is not null)
                {
                    memory.Charge(entry.Value.Length + (2L * distinct[i].Length), "the bulk get's answer");
                }
                results[i] = new BulkStateItem(distinct[i], entry, null);
            }).ConfigureAwait(false);
        return results;
    }

    public async ValueTask SaveAsync(TenantContext tenant, string storeName, IReadOnlyList<StateSaveItem> items, CancellationToken cancellationToken)
    {
        var (route, store) = Find(tenant, storeName);
        if (items.Count == 0)
        {
            return;
        }
        var requests = new StateSetRequest[items.Count];
        for (var i = 0; i < requests.Length; i++)
        {
            requests[i] = ToSetRequest(tenant, items[i]);
        }
        try
        {
            // Each item is its own write (a bulk save is not a transaction), checked against the allowance by the store.
            foreach (var request in requests)
            {
                await WriteAsync(tenant, route, store, [new StateOperation(request, null)], "ERR_STATE_SAVE", $"failed saving state in state store {storeName}", cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is not DaprApiException and not OperationCanceledException)
        {
            throw MapWriteError(ex, "ERR_STATE_SAVE", $"failed saving state in state store {storeName}");
        }
    }

    public async ValueTask DeleteAsync(TenantContext tenant, string storeName, string key, string? etag, StateConcurrency concurrency, CancellationToken cancellationToken)
    {
        var (route, store) = Find(tenant, storeName);
        var request = new StateDeleteRequest(StoredKey(tenant, key), string.IsNullOrEmpty(etag) ? null : etag, concurrency);
        GuardOutcome<bool> outcome;
        try
        {
            outcome = await route.RunGuardedAsync((store, request), static (s, ct) => Done(s.store.DeleteAsync(s.request, ct)), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not DaprApiException and not OperationCanceledException)
        {
            throw MapWriteError(ex, "ERR_STATE_DELETE", $"failed deleting state with key {key}");
        }
        if (outcome.IsRefused)
        {
            throw Refused(route, outcome, storeName, "ERR_STATE_DELETE", $"failed deleting state with key {key}");
        }
    }

    public async ValueTask TransactAsync(TenantContext tenant, string storeName, IReadOnlyList<StateTransactionItem> operations, CancellationToken cancellationToken)
    {
        var (route, store) = Find(tenant, storeName);
        var ops = operations.Select(o => o.IsDelete
                ? new StateOperation(null, new StateDeleteRequest(StoredKey(tenant, o.Item.Key), string.IsNullOrEmpty(o.Item.ETag) ? null : o.Item.ETag, o.Item.Concurrency))
                : new StateOperation(ToSetRequest(tenant, o.Item), null))
            .ToArray();
        if (ops.Length == 0)
        {
            return;
        }
        try
        {
            await WriteAsync(tenant, route, store, ops, "ERR_STATE_TRANSACTION", "error while executing state transaction", cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not DaprApiException and not OperationCanceledException)
        {
            throw MapWriteError(ex, "ERR_STATE_TRANSACTION", "error while executing state transaction");
        }
    }

    private static StateSetRequest ToSetRequest(TenantContext tenant, StateSaveItem item)
    {
        TimeSpan? ttl = null;
        if (item.Metadata is not null && item.Metadata.TryGetValue("ttlInSeconds", out var ttlText))
        {
            if (!long.TryParse(ttlText, NumberStyles.Integer, CultureInfo.InvariantCulture, out var seconds) || seconds < -1 || seconds > int.MaxValue)
            {
                throw new DaprApiException(400, "ERR_STATE_SAVE", $"incorrect value for metadata 'ttlInSeconds': '{ttlText}' is not a whole number of seconds (-1 for none)");
            }
            ttl = seconds > 0 ? TimeSpan.FromSeconds(seconds) : seconds == 0 ? TimeSpan.Zero : null;
        }
        var contentType = string.IsNullOrEmpty(item.ContentType) ? null : item.ContentType;
        if (contentType is not null && !IsContentType(contentType))
        {
            throw Errors.Malformed($"metadata 'contentType' must be at most {MaxContentTypeLength} printable ASCII characters");
        }
        return new StateSetRequest(StoredKey(tenant, item.Key), item.Value, string.IsNullOrEmpty(item.ETag) ? null : item.ETag, item.Concurrency, ttl, contentType);
    }

    /// <summary>A content type the store keeps and a read answers as a header: short, printable ASCII.</summary>
    private static bool IsContentType(string contentType) =>
        contentType.Length <= MaxContentTypeLength && !contentType.AsSpan().ContainsAnyExceptInRange((char)0x20, (char)0x7E);

    private static DaprApiException MapWriteError(Exception ex, string code, string message) => ex switch
    {
        StateETagMismatchException => new DaprApiException(409, code, $"{message}: {ex.Message}", ex),
        StateETagInvalidException or ComponentRequestRejectedException => new DaprApiException(400, code, $"{message}: {ex.Message}", ex),
        _ => new DaprApiException(500, code, $"{message}: {ex.Message}", ex),
    };

    /// <summary>
    /// Writes <paramref name="operations"/> with the tenant's allowance in this store: its key and byte quotas minus what
    /// it stores in its other state stores. The store checks the allowance atomically with the write, against the usage
    /// it keeps with its data, so the request path never counts anything and never calls a store it does not write.
    /// A refusal by the store's guard is answered as the operation's error (<paramref name="code"/>).
    /// </summary>
    private async ValueTask WriteAsync(TenantContext tenant, ComponentRoute route, IStateStore store, StateOperation[] operations, string code, string context,
        CancellationToken cancellationToken)
    {
        var usage = tenant.State.StateUsage;
        var elsewhere = usage.Elsewhere(tenant, route.Name, time);
        var limits = tenant.Limits;
        var allowance = new StateAllowance(tenant.AppId, Remaining(limits.StateMaxKeys, elsewhere.Keys), Remaining(limits.StateMaxBytes, elsewhere.Bytes));
        GuardOutcome<bool> outcome;
        try
        {
            outcome = await route.RunGuardedAsync((store, operations, allowance),
                static (s, ct) => Done(s.store.TransactAsync(s.operations, s.allowance, ct)), cancellationToken).ConfigureAwait(false);
        }
        catch (StateQuotaExceededException ex)
        {
            throw new DaprApiException(507, "ERR_TENANT_QUOTA_EXCEEDED", $"state quota of app {tenant.AppId} exceeded: {ex.Message}", ex);
        }
        if (outcome.IsRefused)
        {
            throw Refused(route, outcome, route.Name, code, context);
        }
        // Another store's allowance counts this one's usage: the next write there reads it again.
        usage.Written(route.Name);
    }

    /// <summary>A limit minus usage elsewhere; an unlimited (<see cref="long.MaxValue"/>) limit stays unlimited.</summary>
    private static long Remaining(long limit, long usedElsewhere) =>
        limit == long.MaxValue ? long.MaxValue : Math.Max(0, limit - usedElsewhere);
}
