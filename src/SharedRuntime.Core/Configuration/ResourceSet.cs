namespace SharedRuntime.Configuration;

/// <summary>Every resource the runtime is configured with, as read from one source at one moment.</summary>
public sealed record ResourceSet
{
    public static ResourceSet Empty { get; } = new() { Tenants = [], Components = [] };

    public required IReadOnlyList<TenantConfig> Tenants { get; init; }
    public required IReadOnlyList<ComponentConfig> Components { get; init; }

    public IReadOnlyList<SubscriptionConfig> Subscriptions { get; init; } = [];
    public IReadOnlyList<ResiliencyConfig> Resiliencies { get; init; } = [];
    public IReadOnlyList<ConfigurationResourceConfig> Configurations { get; init; } = [];
    public IReadOnlyList<HttpEndpointConfig> HttpEndpoints { get; init; } = [];

    /// <summary>
    /// Tenant documents that could not be used (a bad field, a duplicate app-id or token), each naming file, document and
    /// field. Those tenants are left out; the rest of the set applies.
    /// </summary>
    public IReadOnlyList<ResourceException> RejectedTenants { get; init; } = [];

    /// <summary>
    /// Subscription documents that could not be used (a bad field, a match expression over the parser's bounds, more
    /// subscriptions for an app than it may have). Only the apps they name lose them; the rest of the set applies.
    /// </summary>
    public IReadOnlyList<RejectedSubscription> RejectedSubscriptions { get; init; } = [];

    /// <summary>
    /// Ready runtime replicas serving the cluster, this one included (1 outside Kubernetes): a Tenant whose limits are
    /// for the whole cluster gets this share of them here.
    /// </summary>
    public int RuntimeReplicas { get; init; } = 1;

    /// <summary>The Configuration <paramref name="tenant"/>'s <c>spec.config</c> names, in the tenant's own namespace; null when it names none.</summary>
    public ConfigurationResourceConfig? ConfigurationOf(TenantConfig tenant) =>
        tenant.ConfigName is { } name ? Configurations.FirstOrDefault(c => c.Name == name && ResourceNamespace.Same(c.Namespace, tenant.Namespace)) : null;

    /// <summary>The text of every file the set was read from, for the last-good cache; empty for sets built in code.</summary>
    public IReadOnlyList<ResourceDocument> Documents { get; init; } = [];
}

/// <summary>One resource file as read: its path and its YAML text.</summary>
public sealed record ResourceDocument(string Path, string Text);

/// <summary>A Subscription document left out of a set: why, and the app-ids it named (empty: every app).</summary>
public sealed record RejectedSubscription(ResourceException Error, IReadOnlyList<string> Scopes);
