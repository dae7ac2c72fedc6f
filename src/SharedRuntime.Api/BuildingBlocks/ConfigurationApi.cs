using SharedRuntime.Components;
using SharedRuntime.Routing;
using SharedRuntime.Tenancy;

namespace SharedRuntime.BuildingBlocks;

/// <summary>The configuration building block for one tenant: only the tenant's own items, by its app-id prefix.</summary>
internal sealed class ConfigurationApi
{
    public async ValueTask<IReadOnlyDictionary<string, ConfigurationItem>> GetAsync(TenantContext tenant, string storeName, IReadOnlyList<string> keys, CancellationToken cancellationToken)
    {
        var stores = tenant.Routes.ConfigurationStores;
        if (stores.IsEmpty)
        {
            throw new DaprApiException(500, "ERR_CONFIGURATION_STORE_NOT_CONFIGURED", "configuration store is not configured");
        }
        var route = stores.Find(storeName)
            ?? throw new DaprApiException(400, "ERR_CONFIGURATION_STORE_NOT_FOUND", $"configuration store {storeName} not found");
        if (route.Instance is not IConfigurationStore store)
        {
            throw new DaprApiException(500, "ERR_CONFIGURATION_GET", $"configuration store {storeName} is not available: {route.Component.Error}");
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
