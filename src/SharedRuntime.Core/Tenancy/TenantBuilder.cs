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

    /// <summary>
    /// What <paramref name="set"/> changes in <paramref name="previous"/>'s tenants: the contexts made for new and changed
    /// tenants, and the tenants removed. A tenant carried over as it is costs a look-up and a reference check.
    /// </summary>
    public TenantChanges Build(ResourceSet set, RuntimeSnapshot previous, List<ComponentEntry> components)
    {
        var compiler = new RouteCompiler(OutboundPipelines);
        var resiliencies = set.Resiliencies.OrderBy(r => r.Name, StringComparer.Ordinal).ToList();
        var changes = new TenantChanges();
        var sameRest = SameRouteInputs(set, previous, components);
        var kept = 0;
        foreach (var config in set.Tenants)
        {
            previous.Tenants.TryGetValue(config.Id, out var existing);
            if (existing is not null)
            {
                kept++;
            }
            if (sameRest && existing is not null && existing.Config == config)
            {
                // The same resource (an unchanged file's Tenant is the same object, so this is a reference check), and
                // nothing its limits, routes or policy are made from changed: the tenant is carried over as it is.
                continue;
            }
            var limits = SharedAdmission ? defaultLimits : config.Limits.Resolve(defaultLimits, set.RuntimeReplicas, config.Ceiling);
            if (limits == defaultLimits)
            {
                limits = defaultLimits; // the tenants with the default limits share one object
            }
            var policy = PolicyOf(set, config, existing);
            if (existing is not null && existing.Config == config && existing.Limits == limits)
            {
                changes.Updated.Add((existing, existing.WithRoutes(compiler.Compile(config, existing.Routes, components, resiliencies), policy)));
                continue;
            }
            if (!_states.TryGetValue(config.Id, out var state))
            {
                state = new TenantState(config.Id);
                _states[config.Id] = state;
            }
            changes.Updated.Add((existing, new TenantContext(config, limits, state, SharedAdmission ? _sharedAdmission ??= new TenantAdmission(defaultLimits) : null, NodeMemory,
                compiler.Compile(config, null, components, resiliencies), policy, FairShare)));
            if (existing is null)
            {
                CoreLog.TenantAdded(logger, config.Id);
            }
            else
            {
                CoreLog.TenantChanged(logger, config.Id);
            }
        }
        if (kept < previous.Tenants.Count)
        {
            // Some tenant is gone: only then is every id of the set looked at again.
            var ids = set.Tenants.Select(static t => t.Id).ToHashSet(StringComparer.Ordinal);
            changes.Removed.AddRange(previous.Tenants.Values.Where(t => !ids.Contains(t.AppId)));
        }
        return changes;
    }

    /// <summary>
    /// Whether everything besides a tenant's own resource that goes into its context is what <paramref name="previous"/>
    /// was built from: the same component entries (so the same instances), the same Resiliency and Configuration resources
    /// (the same objects, as an unchanged file gives them) and the same number of replicas.
    /// </summary>
    private static bool SameRouteInputs(ResourceSet set, RuntimeSnapshot previous, List<ComponentEntry> components)
    {
        if (set.RuntimeReplicas != previous.Resources.RuntimeReplicas || components.Count != previous.Components.Count)
        {
            return false;
        }
        foreach (var entry in components)
        {
            if (!previous.Components.TryGetValue(entry.Config.Key, out var old) || !ReferenceEquals(old, entry))
            {
                return false;
            }
        }
        return set.Resiliencies.SequenceEqual<object>(previous.Resources.Resiliencies, ReferenceEqualityComparer.Instance) && set.Configurations.SequenceEqual<object>(previous.Resources.Configurations, ReferenceEqualityComparer.Instance);
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

    /// <summary>Forgets the state of each tenant the last build removed.</summary>
    public void ForgetRemoved(TenantChanges changes)
    {
        foreach (var tenant in changes.Removed)
        {
            _states.Remove(tenant.AppId);
            CoreLog.TenantRemoved(logger, tenant.AppId);
        }
    }
}
