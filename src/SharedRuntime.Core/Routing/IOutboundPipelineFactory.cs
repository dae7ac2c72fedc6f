using Polly;

namespace SharedRuntime.Routing;

/// <summary>Builds the pipeline for a tenant's calls into a component from the Resiliency policies that govern them.</summary>
public interface IOutboundPipelineFactory
{
    /// <param name="target">Names the tenant and component, for the pipeline's name and its errors.</param>
    ResiliencePipeline Create(OutboundPolicy policy, string target);
}
