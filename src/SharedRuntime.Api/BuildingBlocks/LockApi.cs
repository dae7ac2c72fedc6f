using SharedRuntime.Components;
using SharedRuntime.Routing;
using SharedRuntime.Tenancy;

namespace SharedRuntime.BuildingBlocks;

/// <summary>
/// The lock building block for one tenant: resource ids are the tenant's own, by its app-id prefix. Bounds: a resource
/// id of at most <see cref="MaxResourceIdLength"/> characters, an owner of at most <see cref="MaxOwnerLength"/>, an
/// expiry of 1 to <see cref="MaxExpirySeconds"/> seconds (400 ERR_MALFORMED_REQUEST beyond); the store bounds the locks
/// one tenant holds (429 ERR_TENANT_LOCKS_EXCEEDED beyond).
/// </summary>
internal sealed class LockApi
{
    public const int MaxResourceIdLength = 256;
    public const int MaxOwnerLength = 256;
    public const int MaxExpirySeconds = 3600;

    private static ILockStore GetStore(TenantContext tenant, string storeName)
    {
        var stores = tenant.Routes.LockStores;
        if (stores.IsEmpty)
        {
            throw new DaprApiException(500, "ERR_LOCK_STORE_NOT_CONFIGURED", "lock store is not configured");
        }
        var route = stores.Find(storeName)
            ?? throw new DaprApiException(400, "ERR_LOCK_STORE_NOT_FOUND", $"lock store {storeName} not found");
        return route.Instance as ILockStore
            ?? throw new DaprApiException(500, "ERR_TRY_LOCK", $"lock store {storeName} is not available: {route.Component.Error}");
    }

    public async ValueTask<bool> TryLockAsync(TenantContext tenant, string storeName, string resourceId, string owner, int expiryInSeconds, CancellationToken cancellationToken)
    {
        var store = GetStore(tenant, storeName);
        var storedId = StoredId(tenant, resourceId, owner);
        if (expiryInSeconds is <= 0 or > MaxExpirySeconds)
        {
            throw Errors.Malformed($"expiryInSeconds must be 1 to {MaxExpirySeconds} seconds");
        }
        try
        {
            return await store.TryLockAsync(storedId, owner, TimeSpan.FromSeconds(expiryInSeconds), cancellationToken).ConfigureAwait(false);
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
        var store = GetStore(tenant, storeName);
        return store.UnlockAsync(StoredId(tenant, resourceId, owner), owner, cancellationToken);
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
