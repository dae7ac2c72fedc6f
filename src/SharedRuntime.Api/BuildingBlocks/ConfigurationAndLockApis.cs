using SharedRuntime.Components;
using SharedRuntime.Tenancy;

namespace SharedRuntime.BuildingBlocks;

/// <summary>The configuration building block for one tenant: only the tenant's own items, by its app-id prefix.</summary>
public sealed class ConfigurationApi(RuntimeConfiguration configuration)
{
    public async ValueTask<IReadOnlyDictionary<string, ConfigurationItem>> GetAsync(TenantContext tenant, string storeName, IReadOnlyList<string> keys, CancellationToken cancellationToken)
    {
        var snapshot = configuration.Current;
        if (!snapshot.VisibleComponents(tenant, "configuration").Any())
        {
            throw new DaprApiException(500, "ERR_CONFIGURATION_STORE_NOT_CONFIGURED", "configuration store is not configured") { GrpcOverride = 9 };
        }
        var entry = snapshot.FindComponent(tenant, "configuration", storeName)
            ?? throw new DaprApiException(400, "ERR_CONFIGURATION_STORE_NOT_FOUND", $"configuration store {storeName} not found");
        if (entry.Instance is not IConfigurationStore store)
        {
            throw new DaprApiException(500, "ERR_CONFIGURATION_GET", $"configuration store {storeName} is not available: {entry.Error}");
        }
        foreach (var key in keys)
        {
            StateApi.StoredKey(tenant, key);
        }
        try
        {
            return await store.GetAsync(tenant.AppId, keys, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new DaprApiException(500, "ERR_CONFIGURATION_GET", $"failed to get {string.Join(",", keys)} from configuration store {storeName}: {ex.Message}", ex);
        }
    }
}

/// <summary>The lock building block for one tenant: resource ids are the tenant's own, by its app-id prefix.</summary>
public sealed class LockApi(RuntimeConfiguration configuration)
{
    private ILockStore GetStore(TenantContext tenant, string storeName)
    {
        var snapshot = configuration.Current;
        if (!snapshot.VisibleComponents(tenant, "lock").Any())
        {
            throw new DaprApiException(500, "ERR_LOCK_STORE_NOT_CONFIGURED", "lock store is not configured") { GrpcOverride = 9 };
        }
        var entry = snapshot.FindComponent(tenant, "lock", storeName)
            ?? throw new DaprApiException(400, "ERR_LOCK_STORE_NOT_FOUND", $"lock store {storeName} not found");
        return entry.Instance as ILockStore
            ?? throw new DaprApiException(500, "ERR_TRY_LOCK", $"lock store {storeName} is not available: {entry.Error}");
    }

    public ValueTask<bool> TryLockAsync(TenantContext tenant, string storeName, string resourceId, string owner, int expiryInSeconds, CancellationToken cancellationToken)
    {
        var store = GetStore(tenant, storeName);
        if (string.IsNullOrEmpty(owner))
        {
            throw new DaprApiException(400, "ERR_MALFORMED_REQUEST", "lockOwner is empty");
        }
        if (expiryInSeconds <= 0)
        {
            throw new DaprApiException(400, "ERR_MALFORMED_REQUEST", "expiryInSeconds must be a positive number of seconds");
        }
        return store.TryLockAsync(StateApi.StoredKey(tenant, resourceId), owner, TimeSpan.FromSeconds(expiryInSeconds), cancellationToken);
    }

    public ValueTask<UnlockStatus> UnlockAsync(TenantContext tenant, string storeName, string resourceId, string owner, CancellationToken cancellationToken) =>
        GetStore(tenant, storeName).UnlockAsync(StateApi.StoredKey(tenant, resourceId), owner, cancellationToken);
}
