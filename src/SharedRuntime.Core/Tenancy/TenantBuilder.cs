using Microsoft.Extensions.Logging;
using SharedRuntime.Admission;
using SharedRuntime.Configuration;
using SharedRuntime.Diagnostics;
using SharedRuntime.Policy;
using SharedRuntime.Routing;

namespace SharedRuntime.Tenancy;

/// <summary>
/// Builds a set's tenants, each with its routes to the set's components. A tenant whose resource and limits are
/// unchanged keeps its admission, memory budget and the routes that are still valid; every tenant keeps its
/// <see cref="TenantState"/> (its usage) for as long as it is configured. Used only under the apply gate.
/// </summary>
internal sealed class TenantBuilder(TenantLimits defaultLimits, ILogger logger)
{
    private readonly Dictionary<string, TenantState> _states = new(StringComparer.Ordinal);
    private TenantAdmission? _sharedAdmission;

    /// <summary>All tenants share one admission sized by the default limits (no isolation; for benchmark baselines).</summary>
    public bool SharedAdmission { get; set; }

    /// <summary>The node-wide memory ceiling every tenant's budget is charged against as well.</summary>
    public MemoryBudget NodeMemory { get; set; } = new(MemoryBudget.DefaultNodeBytes);

    /// <summary>Scales every tenant's rate down in proportion to its limit while the process is saturated.</summary>
    public FairShare FairShare { get; set; } = FairShare.Off;

    /// <summary>Builds each tenant's outbound Resiliency pipelines when its routes are compiled; null builds none.</summary>
    public IOutboundPipelineFactory? OutboundPipelines { get; set; }

    public List<TenantContext> Build(ResourceSet set, RuntimeSnapshot previous, List<ComponentEntry> components)
    {
        var compiler = new RouteCompiler(OutboundPipelines);
        var resiliencies = set.Resiliencies.OrderBy(r => r.Name, StringComparer.Ordinal).ToList();
        var result = new List<TenantContext>(set.Tenants.Count);
        foreach (var config in set.Tenants)
        {
            var limits = SharedAdmission ? defaultLimits : config.Limits.Resolve(defaultLimits, set.RuntimeReplicas, config.Ceiling);
            previous.Tenants.TryGetValue(config.Id, out var existing);
            var policy = PolicyOf(set, config, existing);
            if (existing is not null && existing.Config == config && existing.Limits == limits)
            {
                result.Add(existing.WithRoutes(compiler.Compile(config, existing.Routes, components, resiliencies), policy));
                continue;
            }
            if (!_states.TryGetValue(config.Id, out var state))
            {
                state = new TenantState(config.Id);
                _states[config.Id] = state;
            }
            result.Add(new TenantContext(config, limits, state, SharedAdmission ? _sharedAdmission ??= new TenantAdmission(defaultLimits) : null, NodeMemory,
                compiler.Compile(config, null, components, resiliencies), policy, FairShare));
            if (existing is null)
            {
                CoreLog.TenantAdded(logger, config.Id);
            }
            else
            {
                CoreLog.TenantChanged(logger, config.Id);
            }
        }
        return result;
    }

    /// <summary>
    /// The tenant's compiled policy: the previous one when its Configuration is unchanged, else compiled from the
    /// Configuration its <c>spec.config</c> names in its own namespace (every Tenant left in the set names one that
    /// exists, or none).
    /// </summary>
    private static TenantPolicy PolicyOf(ResourceSet set, TenantConfig config, TenantContext? existing)
    {
        var source = set.ConfigurationOf(config);
        return existing is not null && Equals(existing.Policy.Source, source) ? existing.Policy : TenantPolicy.Compile(source);
    }

    /// <summary>Forgets the state of each tenant of <paramref name="previous"/> that <paramref name="next"/> no longer has.</summary>
    public void ForgetRemoved(RuntimeSnapshot previous, RuntimeSnapshot next)
    {
        foreach (var tenant in previous.Tenants.Values.Where(t => !next.Tenants.ContainsKey(t.AppId)))
        {
            _states.Remove(tenant.AppId);
            CoreLog.TenantRemoved(logger, tenant.AppId);
        }
    }
}
