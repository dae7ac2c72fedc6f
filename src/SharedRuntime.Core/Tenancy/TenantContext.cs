using System.Collections.Concurrent;
using System.Text;
using SharedRuntime.Admission;
using SharedRuntime.Configuration;

namespace SharedRuntime.Tenancy;

/// <summary>
/// One tenant as the current configuration has it: identity, resolved limits and admission. Immutable apart from
/// its limiter state; a change to the tenant's resource builds a new context, so a request that read the old one
/// finishes with it.
/// </summary>
public sealed class TenantContext : IDisposable
{
    internal TenantContext(TenantConfig config, TenantLimits limits, TenantState state, TenantAdmission? sharedAdmission = null, MemoryBudget? nodeMemory = null)
    {
        _ownsAdmission = sharedAdmission is null;
        Config = config;
        Limits = limits;
        State = state;
        Admission = sharedAdmission ?? new TenantAdmission(limits);
        Memory = new MemoryBudget(limits.MaxMemoryBytes, nodeMemory);
        TokenUtf8 = Encoding.UTF8.GetBytes(config.ApiToken);
        TokenKey = TokenKey.FromUtf8(TokenUtf8);
        StatePrefix = config.AppId + Components.StateKeys.Separator;
    }

    public TenantConfig Config { get; }

    public string AppId => Config.AppId;

    public TenantLimits Limits { get; }

    public TenantAdmission Admission { get; }

    /// <summary>
    /// Bytes held for this tenant's requests in flight, under <see cref="TenantLimits.MaxMemoryBytes"/> and the node's
    /// ceiling. A reload that changes the tenant starts a new budget; requests still in flight give back to the old one.
    /// </summary>
    public MemoryBudget Memory { get; }

    /// <summary>What outlives configuration changes: metadata set by the app, for one.</summary>
    public TenantState State { get; }

    /// <summary>Every state key of this tenant starts with this (<c>appid||</c>).</summary>
    public string StatePrefix { get; }

    internal byte[] TokenUtf8 { get; }

    internal TokenKey TokenKey { get; }

    private readonly bool _ownsAdmission;

    public void Dispose()
    {
        if (_ownsAdmission)
        {
            Admission.Dispose();
        }
    }

    public override string ToString() => AppId;
}

/// <summary>Per-app state that survives reloads of the tenant's resource.</summary>
public sealed class TenantState(string appId)
{
    public string AppId { get; } = appId;

    /// <summary>Attributes set with PUT /v1.0/metadata/{key}; bounded.</summary>
    public ConcurrentDictionary<string, string> ExtendedMetadata { get; } = new(StringComparer.Ordinal);

    /// <summary>What the tenant stores in each state store, as last read here: the allowance of a write to one store.</summary>
    public TenantStateUsage StateUsage { get; } = new();

    public const int MaxExtendedMetadataEntries = 64;
    public const int MaxExtendedMetadataValueLength = 4096;
}
