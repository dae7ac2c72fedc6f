using System.Collections.Frozen;
using SharedRuntime.Admission;
using SharedRuntime.Components;
using SharedRuntime.Configuration;
using SharedRuntime.Routing;

namespace SharedRuntime.Tenancy;

public enum ComponentStatus { Ready, Failed }

/// <summary>A configured component and, when it initialised, its instance and the guard every call into it passes.</summary>
public sealed class ComponentEntry
{
    private readonly FrozenSet<string> _scopes;

    internal ComponentEntry(ComponentConfig config, IComponent? instance, string? error, ComponentGuard? guard = null)
    {
        Config = config;
        Instance = instance;
        Error = error;
        Category = config.Category;
        Guard = instance is null ? null : guard;
        _scopes = config.Scopes.ToFrozenSet(StringComparer.Ordinal);
        Topics = Category == BuildingBlock.PubSub ? new TopicRules(config) : null;
    }

    public ComponentConfig Config { get; }

    public string Name => Config.Name;

    /// <summary>The building block (state, pubsub, ...), read once from the type.</summary>
    public string Category { get; }

    public IComponent? Instance { get; }

    public string? Error { get; }

    /// <summary>
    /// The breaker and fair queue shared by every tenant's calls into <see cref="Instance"/>; null when it failed. It
    /// lives as long as the instance: an entry made again for the same instance (a reload) carries it over.
    /// </summary>
    public ComponentGuard? Guard { get; }

    /// <summary>A pub/sub component's topic rules, compiled from its metadata; null for other building blocks.</summary>
    internal TopicRules? Topics { get; }

    public ComponentStatus Status => Instance is null ? ComponentStatus.Failed : ComponentStatus.Ready;

    /// <summary>Dapr scopes: an empty list means every app may use it.</summary>
    public bool IsVisibleTo(string appId) => _scopes.Count == 0 || _scopes.Contains(appId);

    /// <summary>Dapr's rule: a component serves only the apps of its own namespace, then those its scopes name.</summary>
    public bool IsVisibleTo(TenantConfig tenant) => ResourceNamespace.Same(Config.Namespace, tenant.Namespace) && IsVisibleTo(tenant.AppId);
}
