using SharedRuntime.Components;
using SharedRuntime.Routing;
using SharedRuntime.Tenancy;

namespace SharedRuntime.BuildingBlocks;

/// <summary>The metadata API: what one tenant can see of the runtime.</summary>
internal sealed class MetadataApi(AppChannel.SubscriptionDelivery? subscriptions = null, AppChannel.ExternalEndpoints? external = null)
{
    public const string RuntimeVersion = "1.18.0-sharedruntime";

    public sealed record ComponentView(string Name, string Type, string Version, IReadOnlyList<string> Capabilities);

    public sealed record TenantView(string AppId, IReadOnlyList<ComponentView> Components, IReadOnlyDictionary<string, string> Extended)
    {
        /// <summary>The subscriptions being delivered to this app now (declarative and programmatic).</summary>
        public IReadOnlyList<Configuration.SubscriptionConfig> Subscriptions { get; init; } = [];

        /// <summary>The names of the HTTPEndpoints this app may invoke.</summary>
        public IReadOnlyList<string> HttpEndpoints { get; init; } = [];
    }

    public TenantView Describe(TenantContext tenant)
    {
        var components = tenant.Routes.All
            .Select(r => new ComponentView(r.Name, r.Component.Config.Type, r.Component.Config.Version, r.Instance?.Capabilities ?? []))
            .ToArray();
        var extended = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in tenant.State.ExtendedMetadata)
        {
            extended[key] = value;
        }
        extended["daprRuntimeVersion"] = RuntimeVersion;
        return new TenantView(tenant.Config.AppId, components, extended) 
        {
            Subscriptions = subscriptions?.ActiveFor(tenant.AppId) ?? [],
            HttpEndpoints = external?.VisibleTo(tenant) ?? [],
        };
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
        var metadata = tenant.State.ExtendedMetadataToSet;
        if (!metadata.ContainsKey(key) && metadata.Count >= TenantState.MaxExtendedMetadataEntries)
        {
            throw new DaprApiException(507, "ERR_TENANT_QUOTA_EXCEEDED", $"an app may set at most {TenantState.MaxExtendedMetadataEntries} metadata attributes");
        }
        metadata[key] = value;
    }
}
