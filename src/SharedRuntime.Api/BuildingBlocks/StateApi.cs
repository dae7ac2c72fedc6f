using System.Globalization;
using SharedRuntime.Admission;
using SharedRuntime.Components;
using SharedRuntime.Tenancy;

namespace SharedRuntime.BuildingBlocks;

/// <summary>One item to save, as the app wrote it (key without the tenant prefix).</summary>
public sealed record StateSaveItem(string Key, ReadOnlyMemory<byte> Value, string? ETag, StateConcurrency Concurrency, IReadOnlyDictionary<string, string>? Metadata, string? ContentType = null);

/// <summary>One transaction operation, as the app wrote it.</summary>
public sealed record StateTransactionItem(bool IsDelete, StateSaveItem Item);

/// <summary>A bulk get result for one key.</summary>
public sealed record BulkStateItem(string Key, StateEntry? Entry, string? Error);

/// <summary>
/// The state building block for one tenant, shared by the HTTP and gRPC APIs: finds the store the tenant may use,
/// prefixes keys with the app-id, enforces the tenant's state quota, and maps store failures to Dapr errors. Every
/// call into a store goes through the store's <see cref="ComponentGuard"/>: fair shares of its concurrent calls per
/// app (a full line is 429 ERR_TENANT_BACKEND_BUSY) and a breaker that fails calls at once while its backend is down.
/// </summary>
public sealed class StateApi(RuntimeConfiguration configuration, TimeProvider time, AppChannel.ResiliencyPolicies? policies = null)
{
    private const string Category = "state";

    /// <summary>The longest key an app may name, in UTF-8 bytes (without the tenant prefix); longer is 400 ERR_MALFORMED_REQUEST.</summary>
    public const int MaxKeyBytes = 1024;

    /// <summary>The longest <c>metadata.contentType</c> stored with a value, in characters (printable ASCII only); longer is 400 ERR_MALFORMED_REQUEST.</summary>
    public const int MaxContentTypeLength = 256;

    public IStateStore GetStore(TenantContext tenant, string storeName) => Find(tenant, storeName).Store;

    /// <summary>A store the tenant may use, with the guard every call into it passes.</summary>
    /// <remarks>The tenant's Resiliency outbound policy for the store, when it has one, wraps the guarded call.</remarks>
    private readonly record struct GuardedStore(IStateStore Store, ComponentGuard Guard, string AppId, Polly.ResiliencePipeline Pipeline)
    {
        public ValueTask<T> RunAsync<T>(Func<IStateStore, CancellationToken, ValueTask<T>> call, CancellationToken cancellationToken) =>
            Pipeline == Polly.ResiliencePipeline.Empty
                ? Guard.RunAsync(AppId, (Store, call), static (s, ct) => s.call(s.Store, ct), cancellationToken)
                : Pipeline.ExecuteAsync(static (s, ct) => s.Guard.RunAsync(s.AppId, (s.Store, s.call), static (s, ct) => s.call(s.Store, ct), ct), (Guard, AppId, Store, call), cancellationToken);

        public async ValueTask RunAsync(Func<IStateStore, CancellationToken, ValueTask> call, CancellationToken cancellationToken) =>
            await RunAsync(async (store, ct) => { await call(store, ct).ConfigureAwait(false); return true; }, cancellationToken).ConfigureAwait(false);
    }

    private Polly.ResiliencePipeline PipelineFor(TenantContext tenant, string storeName) =>
        policies?.ForOutbound(tenant.AppId, storeName) ?? Polly.ResiliencePipeline.Empty;

    private GuardedStore Find(TenantContext tenant, string storeName)
    {
        var snapshot = configuration.Current;
        var entry = snapshot.FindComponent(tenant, Category, storeName);
        if (entry is null)
        {
            if (!snapshot.VisibleComponents(tenant, Category).Any())
            {
                throw new DaprApiException(500, "ERR_STATE_STORE_NOT_CONFIGURED", "state store is not configured") { GrpcOverride = 9 };
            }
            throw new DaprApiException(400, "ERR_STATE_STORE_NOT_FOUND", $"state store {storeName} is not found");
        }
        if (entry.Instance is not IStateStore store)
        {
            throw new DaprApiException(500, "ERR_STATE_STORE_NOT_CONFIGURED", $"state store {storeName} is not available: {entry.Error}");
        }
        return new GuardedStore(store, ComponentGuard.For(store, entry.Config, time), tenant.AppId, PipelineFor(tenant, storeName));
    }

    /// <summary>A full line for the tenant at a shared store: 429, try again in a second.</summary>
    private static DaprApiException Busy(FairQueueFullException ex, string storeName) =>
        new(429, "ERR_TENANT_BACKEND_BUSY", $"state store {storeName} is busy: {ex.Message}", ex) { RetryAfterSeconds = 1 };

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

    public async ValueTask<StateEntry?> GetAsync(TenantContext tenant, string storeName, string key, CancellationToken cancellationToken)
    {
        var store = Find(tenant, storeName);
        var storedKey = StoredKey(tenant, key);
        try
        {
            var entry = await store.RunAsync((s, ct) => s.GetAsync(storedKey, ct), cancellationToken).ConfigureAwait(false);
            return entry is null ? null : entry with { Key = key };
        }
        catch (FairQueueFullException ex)
        {
            throw Busy(ex, storeName);
        }
        catch (Exception ex) when (ex is not DaprApiException and not OperationCanceledException)
        {
            throw new DaprApiException(ex is ComponentRequestRejectedException ? 400 : 500, "ERR_STATE_GET", $"fail to get {key} from state store {storeName}: {ex.Message}", ex);
        }
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
        var store = Find(tenant, storeName);
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
                StateEntry? entry;
                try
                {
                    entry = await store.RunAsync((s, token) => s.GetAsync(storedKeys[i], token), ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    results[i] = new BulkStateItem(distinct[i], null, ex.Message);
                    return;
                }
                if (entry is not null)
                {
                    memory.Charge(entry.Value.Length + (2L * distinct[i].Length), "the bulk get's answer");
                }
                results[i] = new BulkStateItem(distinct[i], entry is null ? null : entry with { Key = distinct[i] }, null);
            }).ConfigureAwait(false);
        return results;
    }

    public async ValueTask SaveAsync(TenantContext tenant, string storeName, IReadOnlyList<StateSaveItem> items, CancellationToken cancellationToken)
    {
        var store = Find(tenant, storeName);
        var requests = items.Select(i => ToSetRequest(tenant, i)).ToArray();
        if (requests.Length == 0)
        {
            return;
        }
        try
        {
            // Each item is its own write (a bulk save is not a transaction), checked against the allowance by the store.
            foreach (var request in requests)
            {
                await WriteAsync(tenant, store, storeName, [new StateOperation(request, null)], cancellationToken).ConfigureAwait(false);
            }
        }
        catch (FairQueueFullException ex)
        {
            throw Busy(ex, storeName);
        }
        catch (Exception ex) when (ex is not DaprApiException and not OperationCanceledException)
        {
            throw MapWriteError(ex, "ERR_STATE_SAVE", $"failed saving state in state store {storeName}");
        }
    }

    public async ValueTask DeleteAsync(TenantContext tenant, string storeName, string key, string? etag, StateConcurrency concurrency, CancellationToken cancellationToken)
    {
        var store = Find(tenant, storeName);
        var request = new StateDeleteRequest(StoredKey(tenant, key), string.IsNullOrEmpty(etag) ? null : etag, concurrency);
        try
        {
            await store.RunAsync((s, ct) => s.DeleteAsync(request, ct), cancellationToken).ConfigureAwait(false);
        }
        catch (FairQueueFullException ex)
        {
            throw Busy(ex, storeName);
        }
        catch (Exception ex) when (ex is not DaprApiException and not OperationCanceledException)
        {
            throw MapWriteError(ex, "ERR_STATE_DELETE", $"failed deleting state with key {key}");
        }
    }

    public async ValueTask TransactAsync(TenantContext tenant, string storeName, IReadOnlyList<StateTransactionItem> operations, CancellationToken cancellationToken)
    {
        var store = Find(tenant, storeName);
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
            await WriteAsync(tenant, store, storeName, ops, cancellationToken).ConfigureAwait(false);
        }
        catch (FairQueueFullException ex)
        {
            throw Busy(ex, storeName);
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
    /// </summary>
    private async ValueTask WriteAsync(TenantContext tenant, GuardedStore store, string storeName, StateOperation[] operations, CancellationToken cancellationToken)
    {
        var usage = tenant.State.StateUsage;
        var elsewhere = usage.Elsewhere(configuration.Current, tenant, storeName, time);
        var limits = tenant.Limits;
        var allowance = new StateAllowance(tenant.AppId, Remaining(limits.StateMaxKeys, elsewhere.Keys), Remaining(limits.StateMaxBytes, elsewhere.Bytes));
        try
        {
            await store.RunAsync((s, ct) => s.TransactAsync(operations, allowance, ct), cancellationToken).ConfigureAwait(false);
        }
        catch (StateQuotaExceededException ex)
        {
            throw new DaprApiException(507, "ERR_TENANT_QUOTA_EXCEEDED", $"state quota of app {tenant.AppId} exceeded: {ex.Message}", ex);
        }
        if (usage.IsTracked(storeName))
        {
            // Another store's allowance counts this one's usage: read it again (O(1)), after this request.
            usage.Refresh(store.Store, storeName, tenant.AppId, time);
        }
    }

    /// <summary>A limit minus usage elsewhere; an unlimited (<see cref="long.MaxValue"/>) limit stays unlimited.</summary>
    private static long Remaining(long limit, long usedElsewhere) =>
        limit == long.MaxValue ? long.MaxValue : Math.Max(0, limit - usedElsewhere);

    /// <summary>Keys and bytes the tenant stores across every state store it may use.</summary>
    public async ValueTask<StateUsage> UsageAsync(TenantContext tenant, CancellationToken cancellationToken)
    {
        var total = default(StateUsage);
        foreach (var entry in configuration.Current.VisibleComponents(tenant, Category))
        {
            if (entry.Instance is IStateStore store)
            {
                var guarded = new GuardedStore(store, ComponentGuard.For(store, entry.Config, time), tenant.AppId, PipelineFor(tenant, entry.Name));
                total += await guarded.RunAsync((s, ct) => s.GetUsageAsync(tenant.AppId, ct), cancellationToken).ConfigureAwait(false);
            }
        }
        return total;
    }
}
