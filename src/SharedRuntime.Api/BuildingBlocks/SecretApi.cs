using SharedRuntime.Components;
using SharedRuntime.Routing;
using SharedRuntime.Tenancy;

namespace SharedRuntime.BuildingBlocks;

/// <summary>Secret stores for one tenant, shared by HTTP and gRPC.</summary>
internal sealed class SecretApi
{
    private static ISecretStore GetStore(TenantContext tenant, string storeName)
    {
        var stores = tenant.Routes.SecretStores;
        if (stores.IsEmpty)
        {
            throw new DaprApiException(500, "ERR_SECRET_STORES_NOT_CONFIGURED", "secret store is not configured");
        }
        var route = stores.Find(storeName)
            ?? throw new DaprApiException(401, "ERR_SECRET_STORE_NOT_FOUND", $"failed finding secret store with key {storeName}");
        return route.Instance as ISecretStore
            ?? throw new DaprApiException(500, "ERR_SECRET_GET", $"secret store {storeName} is not available: {route.Component.Error}");
    }

    public async ValueTask<IReadOnlyDictionary<string, string>> GetAsync(TenantContext tenant, string storeName, string key, IReadOnlyDictionary<string, string> metadata, CancellationToken cancellationToken)
    {
        var store = GetStore(tenant, storeName);
        if (string.IsNullOrEmpty(key))
        {
            throw Errors.Malformed("secret key is empty");
        }
        if (tenant.Policy.Secrets is { } scopes && !scopes.IsAllowed(storeName, key))
        {
            // As Dapr answers a secret its secret scopes deny: 403, gRPC PERMISSION_DENIED.
            throw new DaprApiException(403, "ERR_PERMISSION_DENIED", $"access denied by policy to get \"{key}\" from \"{storeName}\"");
        }
        IReadOnlyDictionary<string, string>? secret;
        try
        {
            secret = await store.GetSecretAsync(key, metadata, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new DaprApiException(500, "ERR_SECRET_GET", $"failed getting secret with key {key} from secret store {storeName}: {ex.Message}", ex);
        }
        // A key the store does not hold is the caller's mistake, not a failed store (Dapr answers 500 here).
        return secret ?? throw new DaprApiException(404, "ERR_SECRET_GET", $"failed getting secret with key {key} from secret store {storeName}: secret {key} not found");
    }

    public async ValueTask<IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>>> GetBulkAsync(TenantContext tenant, string storeName, IReadOnlyDictionary<string, string> metadata, CancellationToken cancellationToken)
    {
        var store = GetStore(tenant, storeName);
        try
        {
            var secrets = await store.GetBulkSecretAsync(metadata, cancellationToken).ConfigureAwait(false);
            // The secrets its scopes deny are left out, as Dapr does.
            return tenant.Policy.Secrets is { } scopes
                ? secrets.Where(s => scopes.IsAllowed(storeName, s.Key)).ToDictionary(StringComparer.Ordinal)
                : secrets;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new DaprApiException(500, "ERR_SECRET_GET", $"failed getting secrets from secret store {storeName}: {ex.Message}", ex);
        }
    }
}
