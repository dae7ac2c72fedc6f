using System.Collections.Frozen;
using System.Security.Cryptography;
using SharedRuntime.Configuration;

namespace SharedRuntime.Tenancy;

/// <summary>
/// Everything a request needs to know about the configuration, frozen at one moment. A request reads the current
/// snapshot once and takes no lock; a reload builds a new snapshot and swaps it in. A reload that changes a few tenants
/// makes its tenant tables from the previous snapshot's and those changes (<see cref="LayeredTable{TKey, TValue}"/>),
/// not from every tenant again.
/// </summary>
public sealed class RuntimeSnapshot
{
    private readonly LayeredTable<TokenKey, TenantContext> _byToken;
    private readonly LayeredTable<string, TenantContext> _tenants;

    internal RuntimeSnapshot(long generation, IEnumerable<TenantContext> tenants, IEnumerable<ComponentEntry> components, ResourceSet resources)
    {
        Generation = generation;
        var list = tenants.ToList();
        _byToken = LayeredTable<TokenKey, TenantContext>.From(list.Select(static t => KeyValuePair.Create(t.TokenKey, t)));
        _tenants = LayeredTable<string, TenantContext>.From(list.Select(static t => KeyValuePair.Create(t.AppId, t)), StringComparer.Ordinal);
        Components = components.ToFrozenDictionary(c => c.Config.Key, StringComparer.Ordinal);
        Resources = resources;
    }

    /// <summary>The snapshot after <paramref name="previous"/>: its tenants with <paramref name="changes"/> applied.</summary>
    internal RuntimeSnapshot(RuntimeSnapshot previous, TenantChanges changes, IEnumerable<ComponentEntry> components, ResourceSet resources)
    {
        Generation = previous.Generation + 1;
        _byToken = changes.IsEmpty ? previous._byToken : previous._byToken.With(changes.ByToken());
        _tenants = changes.IsEmpty ? previous._tenants : previous._tenants.With(changes.ById());
        Components = components.ToFrozenDictionary(c => c.Config.Key, StringComparer.Ordinal);
        Resources = resources;
        Changes = changes;
    }

    /// <summary>What this snapshot changed in the tenants of the one before it (generation - 1); null when it was built whole.</summary>
    internal TenantChanges? Changes { get; }

    public static RuntimeSnapshot Empty { get; } = new(0, [], [], ResourceSet.Empty);

    public long Generation { get; }

    /// <summary>Tenants by <see cref="TenantContext.AppId"/> (in Kubernetes <c>app-id.namespace</c>).</summary>
    public IReadOnlyDictionary<string, TenantContext> Tenants => _tenants;

    /// <summary>Components by <see cref="ComponentConfig.Key"/> (<c>namespace/name</c> in Kubernetes; all of them; a request finds the ones its tenant may use in <see cref="TenantContext"/>'s routes).</summary>
    public FrozenDictionary<string, ComponentEntry> Components { get; }

    public ResourceSet Resources { get; }

    /// <summary>The tenant whose API token this is, or null. Allocation-free; the comparison is constant-time.</summary>
    public TenantContext? FindByToken(ReadOnlySpan<char> token)
    {
        if (token.IsEmpty)
        {
            return null;
        }
        Span<byte> utf8 = stackalloc byte[TenantParser.MaxTokenBytes];
        if (!TokenKey.TryFromString(token, TenantParser.MaxTokenBytes, utf8, out var key, out var length))
        {
            return null;
        }
        // A tenant known by its token's hash only (fail-static cache) is found by the whole hash, which is the proof.
        if (_byToken.TryGetValue(key, out var tenant) &&
            (tenant.TokenUtf8 is null || CryptographicOperations.FixedTimeEquals(tenant.TokenUtf8, utf8[..length])))
        {
            return tenant;
        }
        return null;
    }

    /// <summary>
    /// The component named <paramref name="name"/> of building block <paramref name="category"/> as the tenant sees it:
    /// null when it does not exist, is of another kind, or is not scoped to the tenant (all three look the same). For
    /// work outside a request (deliveries); a request uses its tenant's compiled routes.
    /// </summary>
    public ComponentEntry? FindComponent(TenantContext tenant, string category, string name)
    {
        if (Components.TryGetValue(ResourceNamespace.Key(name, tenant.Namespace), out var entry) &&
            string.Equals(entry.Category, category, StringComparison.Ordinal) &&
            entry.IsVisibleTo(tenant.Config))
        {
            return entry;
        }
        return null;
    }
}
