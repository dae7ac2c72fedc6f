using System.Collections.Frozen;
using System.Security.Cryptography;
using SharedRuntime.Configuration;

namespace SharedRuntime.Tenancy;

/// <summary>
/// Everything a request needs to know about the configuration, frozen at one moment. A request reads the current
/// snapshot once and takes no lock; a reload builds a new snapshot and swaps it in.
/// </summary>
public sealed class RuntimeSnapshot
{
    private readonly FrozenDictionary<TokenKey, TenantContext> _byToken;

    internal RuntimeSnapshot(long generation, IEnumerable<TenantContext> tenants, IEnumerable<ComponentEntry> components, ResourceSet resources)
    {
        Generation = generation;
        var list = tenants.ToList();
        _byToken = list.ToFrozenDictionary(t => t.TokenKey);
        Tenants = list.ToFrozenDictionary(t => t.AppId, StringComparer.Ordinal);
        Components = components.ToFrozenDictionary(c => c.Config.Key, StringComparer.Ordinal);
        Resources = resources;
    }

    public static RuntimeSnapshot Empty { get; } = new(0, [], [], ResourceSet.Empty);

    public long Generation { get; }

    /// <summary>Tenants by <see cref="TenantContext.AppId"/> (in Kubernetes <c>app-id.namespace</c>).</summary>
    public FrozenDictionary<string, TenantContext> Tenants { get; }

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
