using SharedRuntime.Components;
using SharedRuntime.Routing;
using SharedRuntime.Tenancy;

namespace SharedRuntime.BuildingBlocks;

/// <summary>Output bindings for one tenant, shared by HTTP and gRPC: a call runs through the tenant's route (its Resiliency outbound policy).</summary>
public sealed class BindingApi
{
    public async ValueTask<BindingResponse> InvokeAsync(TenantContext tenant, string name, BindingRequest request, CancellationToken cancellationToken)
    {
        if (!tenant.Routes.Bindings.TryFind(name, out var route))
        {
            // A name the tenant cannot see is the caller's mistake, not a failed binding (Dapr answers 500 here).
            throw new DaprApiException(404, "ERR_INVOKE_OUTPUT_BINDING", $"error invoking output binding {name}: couldn't find output binding {name}");
        }
        if (route.Instance is not IOutputBinding binding)
        {
            throw new DaprApiException(500, "ERR_INVOKE_OUTPUT_BINDING", $"error invoking output binding {name}: {route.Component.Error}");
        }
        if (string.IsNullOrEmpty(request.Operation))
        {
            throw Errors.Malformed("operation field is missing from request");
        }
        if (!binding.Operations.Contains(request.Operation, StringComparer.OrdinalIgnoreCase))
        {
            throw new DaprApiException(400, "ERR_INVOKE_OUTPUT_BINDING", $"error invoking output binding {name}: binding {name} does not support operation {request.Operation}; supported: {string.Join(", ", binding.Operations)}");
        }
        try
        {
            return await route.RunAsync((binding, request), static (state, token) => state.binding.InvokeAsync(state.request, token), cancellationToken).ConfigureAwait(false);
        }
        catch (ArgumentException ex)
        {
            // The binding refused what the request carried (a metadata value it cannot send): the caller's error.
            throw new DaprApiException(400, "ERR_INVOKE_OUTPUT_BINDING", $"error invoking output binding {name}: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is not DaprApiException and not OperationCanceledException)
        {
            throw new DaprApiException(500, "ERR_INVOKE_OUTPUT_BINDING", $"error invoking output binding {name}: {ex.Message}", ex);
        }
    }
}

/// <summary>Secret stores for one tenant, shared by HTTP and gRPC.</summary>
public sealed class SecretApi
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
            return await store.GetBulkSecretAsync(metadata, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new DaprApiException(500, "ERR_SECRET_GET", $"failed getting secrets from secret store {storeName}: {ex.Message}", ex);
        }
    }
}

/// <summary>The metadata API: what one tenant can see of the runtime.</summary>
public sealed class MetadataApi(AppChannel.SubscriptionDelivery? subscriptions = null)
{
    public const string RuntimeVersion = "1.18.0-sharedruntime";

    public sealed record ComponentView(string Name, string Type, string Version, IReadOnlyList<string> Capabilities);

    public sealed record TenantView(string AppId, IReadOnlyList<ComponentView> Components, IReadOnlyDictionary<string, string> Extended)
    {
        /// <summary>The subscriptions being delivered to this app now (declarative and programmatic).</summary>
        public IReadOnlyList<Configuration.SubscriptionConfig> Subscriptions { get; init; } = [];
    }

    public TenantView Describe(TenantContext tenant)
    {
        var components = tenant.Routes.All
            .Select(r => new ComponentView(r.Name, r.Component.Config.Type, r.Component.Config.Version, r.Instance?.Capabilities ?? []))
            .ToArray();
        var extended = new SortedDictionary<string, string>(tenant.State.ExtendedMetadata, StringComparer.Ordinal)
        {
            ["daprRuntimeVersion"] = RuntimeVersion,
        };
        return new TenantView(tenant.AppId, components, extended) { Subscriptions = subscriptions?.ActiveFor(tenant.AppId) ?? [] };
    }

    public static void Set(TenantContext tenant, string key, string value)
    {
        if (string.IsNullOrEmpty(key) || key.Length > 256)
        {
            throw Errors.Malformed("metadata key must be 1 to 256 characters");
        }
        if (value.Length > TenantState.MaxExtendedMetadataValueLength)
        {
            throw new DaprApiException(413, "ERR_TENANT_BODY_TOO_LARGE", $"metadata value is longer than {TenantState.MaxExtendedMetadataValueLength} characters");
        }
        var metadata = tenant.State.ExtendedMetadata;
        if (!metadata.ContainsKey(key) && metadata.Count >= TenantState.MaxExtendedMetadataEntries)
        {
            throw new DaprApiException(507, "ERR_TENANT_QUOTA_EXCEEDED", $"an app may set at most {TenantState.MaxExtendedMetadataEntries} metadata attributes");
        }
        metadata[key] = value;
    }
}
