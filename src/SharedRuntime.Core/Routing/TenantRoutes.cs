using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;

namespace SharedRuntime.Routing;

/// <summary>
/// One tenant's compiled view of the components it may use, per building block: built with each snapshot, read by a
/// request through the <see cref="Tenancy.TenantContext"/> the admission resolved, so a request reads the snapshot
/// once. Only components scoped to the tenant have a route, under their own building block, so neither another
/// tenant's component nor one of another building block can be named; a made-up name finds nothing and caches nothing.
/// </summary>
internal sealed class TenantRoutes
{
    private readonly FrozenDictionary<string, BuildingBlockRoutes> _byBlock;

    public TenantRoutes(IEnumerable<ComponentRoute> routes)
    {
        All = [.. routes.OrderBy(r => r.Name, StringComparer.Ordinal)];
        _byBlock = All.GroupBy(r => r.Component.Category, StringComparer.Ordinal)
            .ToFrozenDictionary(g => g.Key, g => new BuildingBlockRoutes(g), StringComparer.Ordinal);
        State = Block(BuildingBlock.State);
        PubSub = Block(BuildingBlock.PubSub);
        Bindings = Block(BuildingBlock.Bindings);
        SecretStores = Block(BuildingBlock.SecretStores);
        ConfigurationStores = Block(BuildingBlock.Configuration);
        LockStores = Block(BuildingBlock.Lock);
    }

    public static TenantRoutes Empty { get; } = new([]);

    /// <summary>Every route of the tenant, by component name.</summary>
    public ComponentRoute[] All { get; }

    public BuildingBlockRoutes State { get; }

    public BuildingBlockRoutes PubSub { get; }

    public BuildingBlockRoutes Bindings { get; }

    public BuildingBlockRoutes SecretStores { get; }

    public BuildingBlockRoutes ConfigurationStores { get; }

    public BuildingBlockRoutes LockStores { get; }

    /// <summary>The routes of building block <paramref name="block"/> (none for one the tenant has no component of).</summary>
    public BuildingBlockRoutes Block(string block) => _byBlock.GetValueOrDefault(block) ?? BuildingBlockRoutes.None;

    /// <summary>The route to <paramref name="name"/> of <paramref name="block"/>, for a reload to reuse.</summary>
    internal ComponentRoute? Find(string block, string name) => Block(block).Find(name);
}

/// <summary>A tenant's routes to the components of one building block, by name.</summary>
internal sealed class BuildingBlockRoutes
{
    private readonly FrozenDictionary<string, ComponentRoute> _byName;

    public BuildingBlockRoutes(IEnumerable<ComponentRoute> routes)
    {
        All = [.. routes];
        _byName = All.ToFrozenDictionary(r => r.Name, StringComparer.Ordinal);
    }

    public static BuildingBlockRoutes None { get; } = new([]);

    /// <summary>The routes, by component name.</summary>
    public ComponentRoute[] All { get; }

    /// <summary>
    /// True when the tenant sees no component of this building block: Dapr then answers "not configured" rather than
    /// "not found".
    /// </summary>
    public bool IsEmpty => All.Length == 0;

    public ComponentRoute? Find(string name) => _byName.GetValueOrDefault(name);

    public bool TryFind(string name, [NotNullWhen(true)] out ComponentRoute? route) => _byName.TryGetValue(name, out route);
}

/// <summary>The building blocks, as a component type names them (the part before the first dot).</summary>
internal static class BuildingBlock
{
    public const string State = "state";
    public const string PubSub = "pubsub";
    public const string Bindings = "bindings";
    public const string SecretStores = "secretstores";
    public const string Configuration = "configuration";
    public const string Lock = "lock";
}
