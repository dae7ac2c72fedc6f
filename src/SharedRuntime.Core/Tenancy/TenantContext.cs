using System.Collections.Concurrent;
using System.Text;
using SharedRuntime.Admission;
using SharedRuntime.Configuration;
using SharedRuntime.Policy;
using SharedRuntime.Routing;

namespace SharedRuntime.Tenancy;

/// <summary>
/// One tenant as one snapshot has it: identity, resolved limits, admission and its compiled routes. Immutable apart
/// from its limiter state. A change to the tenant's resource builds a new context with new admission, so a request that
/// read the old one finishes with it; a reload that leaves the tenant unchanged carries its admission, memory budget
/// and state into the new snapshot's context (<see cref="WithRoutes"/>).
/// </summary>
public sealed class TenantContext : IDisposable
{
    internal TenantContext(TenantConfig config, TenantLimits limits, TenantState state, TenantAdmission? sharedAdmission = null, MemoryBudget? nodeMemory = null,
        TenantRoutes? routes = null, TenantPolicy? policy = null, FairShare? fairShare = null)
    {
        _ownsAdmission = sharedAdmission is null;
        Config = config;
        Limits = limits;
        State = state;
        Admission = sharedAdmission ?? new TenantAdmission(limits, fairShare ?? FairShare.Off);
        Memory = new MemoryBudget(limits.MaxMemoryBytes, nodeMemory);
        TokenUtf8 = config.ApiTokenSha256 is null ? Encoding.UTF8.GetBytes(config.ApiToken) : null;
        TokenKey = config.ApiTokenSha256 is { } hash ? TokenKey.FromHash(hash) : TokenKey.FromUtf8(TokenUtf8);
        StatePrefix = ResourceNamespace.StatePrefix(config.AppId, config.Namespace, Components.StateKeys.Separator);
        Routes = routes ?? TenantRoutes.Empty;
        Policy = policy ?? TenantPolicy.Open;
    }

    /// <summary>The same tenant (the same admission, memory budget and state) in a new snapshot, with that snapshot's routes and policy.</summary>
    private TenantContext(TenantContext tenant, TenantRoutes routes, TenantPolicy policy)
    {
        _ownsAdmission = tenant._ownsAdmission;
        Config = tenant.Config;
        Limits = tenant.Limits;
        State = tenant.State;
        Admission = tenant.Admission;
        Memory = tenant.Memory;
        TokenUtf8 = tenant.TokenUtf8;
        TokenKey = tenant.TokenKey;
        StatePrefix = tenant.StatePrefix;
        Routes = routes;
        Policy = policy;
    }

    /// <summary>This tenant, unchanged, as a new snapshot has it: <paramref name="routes"/> and <paramref name="policy"/> are that snapshot's.</summary>
    internal TenantContext WithRoutes(TenantRoutes routes, TenantPolicy policy) =>
        ReferenceEquals(routes, Routes) && ReferenceEquals(policy, Policy) ? this : new TenantContext(this, routes, policy);

    public TenantConfig Config { get; }

    /// <summary>
    /// The tenant's identity on this runtime, what every per-tenant table, consumer group and metric is keyed by: the
    /// app-id, or in Kubernetes <c>app-id.namespace</c>. What the app itself is called (in scopes, in the headers it
    /// receives, in the metadata API) is <see cref="TenantConfig.AppId"/>.
    /// </summary>
    public string AppId => Config.Id;

    /// <summary>The Kubernetes namespace of the tenant; null for resource files.</summary>
    public string? Namespace => Config.Namespace;

    public TenantLimits Limits { get; }

    public TenantAdmission Admission { get; }

    /// <summary>
    /// Bytes held for this tenant's requests in flight, under <see cref="TenantLimits.MaxMemoryBytes"/> and the node's
    /// ceiling. A reload that changes the tenant starts a new budget; requests still in flight give back to the old one.
    /// </summary>
    public MemoryBudget Memory { get; }

    /// <summary>What outlives configuration changes: metadata set by the app, for one.</summary>
    public TenantState State { get; }

    /// <summary>
    /// The components this tenant may use, per building block, compiled with the snapshot this context belongs to: a
    /// request reaches them from the context the admission resolved, without reading the configuration again.
    /// </summary>
    internal TenantRoutes Routes { get; }

    /// <summary>
    /// What the tenant's Dapr Configuration says about its own calls (API allow and deny lists, secret scopes, tracing
    /// sampling rate), compiled with the snapshot this context belongs to.
    /// </summary>
    public TenantPolicy Policy { get; }

    /// <summary>Every state key of this tenant starts with this (<c>appid||</c>; in Kubernetes <c>namespace.appid||</c>).</summary>
    public string StatePrefix { get; }

    /// <summary>The token's bytes; null when only its SHA-256 is known (read back from the fail-static cache).</summary>
    internal byte[]? TokenUtf8 { get; }

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
