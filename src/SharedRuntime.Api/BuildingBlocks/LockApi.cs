using SharedRuntime.Admission;
using SharedRuntime.Components;
using SharedRuntime.Routing;
using SharedRuntime.Tenancy;

namespace SharedRuntime.BuildingBlocks;

/// <summary>
/// The lock building block for one tenant: resource ids are the tenant's own, by its app-id prefix. Bounds: a resource
/// id of at most <see cref="MaxResourceIdLength"/> characters, an owner of at most <see cref="MaxOwnerLength"/>, an
/// expiry of 1 to <see cref="MaxExpirySeconds"/> seconds (400 ERR_MALFORMED_REQUEST beyond); the store bounds the locks
/// one tenant holds (429 ERR_TENANT_LOCKS_EXCEEDED beyond). Calls pass the store's guard (fair queue and backend
/// breaker, shared by every tenant of the store); a failing store answers 500 ERR_TRY_LOCK or ERR_UNLOCK.
/// </summary>
internal sealed class LockApi
{
    public const int MaxResourceIdLength = 256;
    public const int MaxOwnerLength = 256;
    public const int MaxExpirySeconds = 3600;

    private static (ComponentRoute Route, ILockStore Store) GetStore(TenantContext tenant, string storeName, string code)
    {
        var stores = tenant.Routes.LockStores;
        if (stores.IsEmpty)
        {
            throw new DaprApiException(500, "ERR_LOCK_STORE_NOT_CONFIGURED", "lock store is not configured");
        }
        var route = stores.Find(storeName)
            ?? throw new DaprApiException(400, "ERR_LOCK_STORE_NOT_FOUND", $"lock store {storeName} not found");
        return route.Instance is ILockStore store
            ? (route, store)
            : throw new DaprApiException(500, code, $"lock store {storeName} is not available: {route.Component.Error}");
    }

    public async ValueTask<bool> TryLockAsync(TenantContext tenant, string storeName, string resourceId, string owner, int expiryInSeconds, CancellationToken cancellationToken)
    {
        var (route, store) = GetStore(tenant, storeName, "ERR_TRY_LOCK");
        var storedId = StoredId(tenant, resourceId, owner);
        if (expiryInSeconds is <= 0 or > MaxExpirySeconds)
        {
            throw Errors.Malformed($"expiryInSeconds must be 1 to {MaxExpirySeconds} seconds");
        }
        try
        {
            return await GuardedAsync(route, storeName, "ERR_TRY_LOCK", (store, storedId, owner, expiry: TimeSpan.FromSeconds(expiryInSeconds)),
                static (s, token) => s.store.TryLockAsync(s.storedId, s.owner, s.expiry, token), cancellationToken).ConfigureAwait(false);
        }
        catch (LockLimitExceededException ex)
        {
            throw new DaprApiException(429, "ERR_TENANT_LOCKS_EXCEEDED", $"lock store {storeName}: {ex.Message}; unlock one or wait for one to expire", ex)
            {
                RetryAfterSeconds = (int)Math.Clamp(Math.Ceiling(ex.RetryAfter.TotalSeconds), 1, MaxExpirySeconds),
            };
        }
    }

    public ValueTask<UnlockStatus> UnlockAsync(TenantContext tenant, string storeName, string resourceId, string owner, CancellationToken cancellationToken)
    {
        var (route, store) = GetStore(tenant, storeName, "ERR_UNLOCK");
        var storedId = StoredId(tenant, resourceId, owner);
        return GuardedAsync(route, storeName, "ERR_UNLOCK", (store, storedId, owner),
            static (s, token) => s.store.UnlockAsync(s.storedId, s.owner, token), cancellationToken);
    }

    private static async ValueTask<T> GuardedAsync<T, TState>(ComponentRoute route, string storeName, string code, TState state,
        Func<TState, CancellationToken, ValueTask<T>> call, CancellationToken cancellationToken)
    {
        GuardOutcome<T> outcome;
        try
        {
            outcome = await route.RunGuardedAsync(state, call, cancellationToken).ConfigureAwait(false);
        }
        catch (ComponentException ex) when (ex is not LockLimitExceededException)
        {
            throw new DaprApiException(ex is ComponentRequestRejectedException ? 400 : 500, code, $"lock store {storeName}: {ex.Message}", ex);
        }
        catch (TimeoutException ex)
        {
            throw new DaprApiException(500, code, $"lock store {storeName}: {ex.Message}", ex);
        }
        if (outcome.IsRefused)
        {
            var reason = route.Describe(outcome.Refusal, outcome.RetryAfter);
            throw outcome.Refusal == GuardRefusal.LineFull
                ? new DaprApiException(429, "ERR_TENANT_BACKEND_BUSY", $"lock store {storeName} is busy: {reason}") { RetryAfterSeconds = 1 }
                : new DaprApiException(500, code, $"lock store {storeName}: {reason}");
        }
        return outcome.Value;
    }

    /// <summary>The tenant's stored resource id, once resource id and owner are within their bounds.</summary>
    private static string StoredId(TenantContext tenant, string resourceId, string owner)
    {
        if (string.IsNullOrEmpty(resourceId))
        {
            throw Errors.Malformed("resourceId is empty");
        }
        if (resourceId.Length > MaxResourceIdLength)
        {
            throw Errors.Malformed($"resourceId is longer than {MaxResourceIdLength} characters");
        }
        if (string.IsNullOrEmpty(owner))
        {
            throw Errors.Malformed("lockOwner is empty");
        }
        if (owner.Length > MaxOwnerLength)
        {
            throw Errors.Malformed($"lockOwner is longer than {MaxOwnerLength} characters");
        }
        return StateApi.StoredKey(tenant, resourceId);
    }
}
