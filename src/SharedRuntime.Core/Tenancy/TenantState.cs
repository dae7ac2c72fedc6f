using System.Collections.Concurrent;

namespace SharedRuntime.Tenancy;

/// <summary>Per-app state that survives reloads of the tenant's resource.</summary>
public sealed class TenantState(string appId)
{
    public string AppId { get; } = appId;

    private ConcurrentDictionary<string, string>? _extendedMetadata;
    private TenantStateUsage? _stateUsage;

    /// <summary>
    /// Attributes set with PUT /v1.0/metadata/{key}; bounded. Empty and shared until the app sets one: most apps set
    /// none, and every resident tenant would otherwise keep a dictionary of its own.
    /// </summary>
    public IReadOnlyDictionary<string, string> ExtendedMetadata => (IReadOnlyDictionary<string, string>?)Volatile.Read(ref _extendedMetadata) ?? NoMetadata;

    /// <summary>The attributes to set one in: made on the first (<see cref="ExtendedMetadata"/> reads them).</summary>
    public ConcurrentDictionary<string, string> ExtendedMetadataToSet
    {
        get
        {
            var metadata = Volatile.Read(ref _extendedMetadata);
            if (metadata is not null)
            {
                return metadata;
            }
            var made = new ConcurrentDictionary<string, string>(concurrencyLevel: 1, capacity: 1, StringComparer.Ordinal);
            return Interlocked.CompareExchange(ref _extendedMetadata, made, null) ?? made;
        }
    }

    /// <summary>
    /// What the tenant stores in each state store, as last read here: the allowance of a write to one store. Made on the
    /// tenant's first write.
    /// </summary>
    public TenantStateUsage StateUsage
    {
        get
        {
            var usage = Volatile.Read(ref _stateUsage);
            if (usage is not null)
            {
                return usage;
            }
            var made = new TenantStateUsage();
            return Interlocked.CompareExchange(ref _stateUsage, made, null) ?? made;
        }
    }

    private static readonly IReadOnlyDictionary<string, string> NoMetadata = new Dictionary<string, string>(0, StringComparer.Ordinal);

    public const int MaxExtendedMetadataEntries = 64;
    public const int MaxExtendedMetadataValueLength = 4096;
}
