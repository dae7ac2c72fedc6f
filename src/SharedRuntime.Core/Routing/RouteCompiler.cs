using Polly;
using SharedRuntime.Configuration;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Routing;

/// <summary>
/// Compiles each tenant's <see cref="TenantRoutes"/> when a snapshot is built: a route for every component scoped to
/// the tenant, with the outbound Resiliency pipeline that governs the pair. A route of the previous snapshot is kept
/// when the tenant is unchanged (<paramref name="pipelines"/> aside, nothing else goes into a route), the component
/// instance is the same, and the governing policies have the same fingerprint; so is the whole view when every route is.
/// </summary>
internal sealed class RouteCompiler(IOutboundPipelineFactory? pipelines)
{
    /// <param name="tenant">The tenant: the components of its namespace that its scopes allow are its routes.</param>
    /// <param name="previous">The tenant's routes in the previous snapshot when the tenant is unchanged, else null.</param>
    /// <param name="components">Every component of the new snapshot.</param>
    /// <param name="resiliencies">The Resiliency resources of the new snapshot, ordered by name.</param>
    public TenantRoutes Compile(TenantConfig tenant, TenantRoutes? previous, IReadOnlyList<ComponentEntry> components, IReadOnlyList<ResiliencyConfig> resiliencies)
    {
        var routes = new List<ComponentRoute>();
        var allKept = previous is not null;
        foreach (var entry in components)
        {
            if (!entry.IsVisibleTo(tenant))
            {
                continue;
            }
            var policy = OutboundPolicy.ForComponent(resiliencies, tenant, entry.Name);
            var old = previous?.Find(entry.Category, entry.Name);
            if (old is not null && old.Instance is not null && ReferenceEquals(old.Instance, entry.Instance) && OutboundPolicy.SameAs(old.Policy, policy))
            {
                routes.Add(old);
                continue;
            }
            allKept = false;
            routes.Add(new ComponentRoute(tenant.Id, entry, policy, PipelineFor(policy, tenant.Id, entry.Name)));
        }
        return allKept && routes.Count == previous!.All.Length ? previous : new TenantRoutes(routes);
    }

    private ResiliencePipeline PipelineFor(OutboundPolicy? policy, string appId, string component) =>
        policy is null || pipelines is null ? ResiliencePipeline.Empty : pipelines.Create(policy, $"component {component} for {appId}");
}
