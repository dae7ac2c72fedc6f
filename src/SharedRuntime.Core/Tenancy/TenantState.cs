using System.Collections.Concurrent;

namespace SharedRuntime.Tenancy;

/// <summary>Per-app state that survives reloads of the tenant's resource.</summary>
public sealed class TenantState(string appId)
{
    public string AppId { get; } = appId;

    /// <summary>
    /// Attributes set with PUT /v1.0/metadata/{key}; bounded. Made as small as it can be (most apps set none, and every
    /// tenant keeps one): it grows when used.
    /// </summary>
    public ConcurrentDictionary<string, string> ExtendedMetadata { get; } = new(concurrencyLevel: 1, capacity: 1, StringComparer.Ordinal);

    /// <summary>What the tenant stores in each state store, as last read here: the allowance of a write to one store.</summary>
    public TenantStateUsage StateUsage { get; } = new();

    public const int MaxExtendedMetadataEntries = 64;
    public const int MaxExtendedMetadataValueLength = 4096;
}
