using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;

namespace SharedRuntime.Routing;

/// <summary>
/// One tenant's compiled view of the components it may use, per building block: built with each snapshot, read by a
/// request through the <see cref="Tenancy.TenantContext"/> the admission resolved, so a request reads the snapshot
/// once. Only components scoped to the tenant have a route, under their own building block, so neither another
/// tenant's component nor one of another building block can be named; a made-up name finds nothing and caches nothing.
/// </summary>
/// <remarks>
/// Every tenant keeps one, so it is kept small: a handful of building blocks and, in each, usually a few components,
/// found by comparing names in an array (faster than hashing at these sizes, and no table per tenant); a building block
/// with many components gets a frozen table.
/// </remarks>
internal sealed class TenantRoutes
{
    private readonly BuildingBlockRoutes[] _blocks;

    public TenantRoutes(IEnumerable<ComponentRoute> routes)
    {
        All = [.. routes.OrderBy(r => r.Name, StringComparer.Ordinal)];
        _blocks = [.. All.GroupBy(r => r.Component.Category, StringComparer.Ordinal).Select(g => new BuildingBlockRoutes(g.Key, g))];
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
    public BuildingBlockRoutes Block(string block)
    {
        foreach (var routes in _blocks)
        {
            if (string.Equals(routes.Block, block, StringComparison.Ordinal))
            {
                return routes;
            }
        }
        return BuildingBlockRoutes.None;
    }

    /// <summary>The route to <paramref name="name"/> of <paramref name="block"/>, for a reload to reuse.</summary>
    internal ComponentRoute? Find(string block, string name) => Block(block).Find(name);
}

/// <summary>A tenant's routes to the components of one building block, by name.</summary>
internal sealed class BuildingBlockRoutes
{
    /// <summary>Up to this many routes are found by comparing names; more get a frozen table.</summary>
    private const int MaxScanned = 8;

    private readonly FrozenDictionary<string, ComponentRoute>? _byName;

    public BuildingBlockRoutes(string block, IEnumerable<ComponentRoute> routes)
    {
        Block = block;
        All = [.. routes];
        _byName = All.Length > MaxScanned ? All.ToFrozenDictionary(r => r.Name, StringComparer.Ordinal) : null;
    }

    public static BuildingBlockRoutes None { get; } = new("", []);

    /// <summary>The building block, as component types name it.</summary>
    public string Block { get; }

    /// <summary>The routes, by component name.</summary>
    public ComponentRoute[] All { get; }

    /// <summary>
    /// True when the tenant sees no component of this building block: Dapr then answers "not configured" rather than
    /// "not found".
    /// </summary>
    public bool IsEmpty => All.Length == 0;

    public ComponentRoute? Find(string name)
    {
        if (_byName is not null)
        {
            return _byName.GetValueOrDefault(name);
        }
        foreach (var route in All)
        {
            if (string.Equals(route.Name, name, StringComparison.Ordinal))
            {
                return route;
            }
        }
        return null;
    }

    public bool TryFind(string name, [NotNullWhen(true)] out ComponentRoute? route)
    {
        route = Find(name);
        return route is not null;
    }
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
