namespace SharedRuntime.Kubernetes.Watching;

/// <summary>One Kubernetes resource type the runtime reads: where its list and watch live and what its objects are called.</summary>
/// <param name="ClusterScoped">Objects of the kind belong to no namespace: it is read across the cluster even when the source reads one namespace.</param>
/// <param name="Optional">A list the runtime may not read (403, a ClusterRole from before the kind was read) counts as empty, as a type not installed does.</param>
internal sealed record WatchedKind(string Group, string Version, string Plural, string Kind, bool ClusterScoped = false, bool Optional = false)
{
    public static WatchedKind Tenants { get; } = new("sharedruntime.io", "v1alpha1", "tenants", "Tenant");
    public static WatchedKind Components { get; } = new("dapr.io", "v1alpha1", "components", "Component");
    public static WatchedKind Resiliencies { get; } = new("dapr.io", "v1alpha1", "resiliencies", "Resiliency");
    public static WatchedKind Configurations { get; } = new("dapr.io", "v1alpha1", "configurations", "Configuration");
    public static WatchedKind HttpEndpoints { get; } = new("dapr.io", "v1alpha1", "httpendpoints", "HTTPEndpoint", Optional: true);
    public static WatchedKind SubscriptionsV2 { get; } = new("dapr.io", "v2alpha1", "subscriptions", "Subscription");
    public static WatchedKind SubscriptionsV1 { get; } = new("dapr.io", "v1alpha1", "subscriptions", "Subscription");
    /// <summary>Read one by one by name (<see cref="SecretReader"/>), never listed or watched (not in <see cref="All"/>).</summary>
    public static WatchedKind Secrets { get; } = new("", "v1", "secrets", "Secret");

    /// <summary>The Pods of this node, read only with a node name set (not in <see cref="All"/>).</summary>
    public static WatchedKind Pods { get; } = new("", "v1", "pods", "Pod");

    /// <summary>The operators' ceilings on Tenant limits, per namespace by label selector (cluster-scoped).</summary>
    public static WatchedKind TenantLimitPolicies { get; } = new("sharedruntime.io", "v1alpha1", "tenantlimitpolicies", "TenantLimitPolicy", ClusterScoped: true);

    /// <summary>Namespaces, for their labels, which TenantLimitPolicies select by.</summary>
    public static WatchedKind Namespaces { get; } = new("", "v1", "namespaces", "Namespace", ClusterScoped: true);

    /// <summary>The runtime's own Service's slices, read only with a cluster Service set (not in <see cref="All"/>).</summary>
    public static WatchedKind EndpointSlices { get; } = new("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice");

    /// <summary>Every kind, in the order their objects are handed to the parser.</summary>
    public static IReadOnlyList<WatchedKind> All { get; } =
        [Tenants, Components, Resiliencies, Configurations, HttpEndpoints, SubscriptionsV2, SubscriptionsV1, TenantLimitPolicies, Namespaces];

    public string ApiVersion => Group.Length == 0 ? Version : $"{Group}/{Version}";

    /// <summary>The collection path, in one namespace or (null) across all of them.</summary>
    public string Path(string? @namespace)
    {
        var prefix = Group.Length == 0 ? $"/api/{Version}" : $"/apis/{Group}/{Version}";
        return @namespace is null || ClusterScoped ? $"{prefix}/{Plural}" : $"{prefix}/namespaces/{Uri.EscapeDataString(@namespace)}/{Plural}";
    }

    public override string ToString() => $"{Plural}.{(Group.Length == 0 ? "core" : Group)}/{Version}";
}
