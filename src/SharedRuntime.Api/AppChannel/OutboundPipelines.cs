using Polly;
using Polly.Retry;
using Polly.Timeout;
using SharedRuntime.Configuration;
using SharedRuntime.Routing;

namespace SharedRuntime.AppChannel;

/// <summary>
/// Builds a tenant's pipeline for its calls into a component (<c>targets.components.NAME.outbound</c>) when the
/// snapshot compiles its routes: retry, then breaker, then timeout, as for apps.
/// </summary>
internal sealed class OutboundPipelines(TimeProvider time) : IOutboundPipelineFactory
{
    public ResiliencePipeline Create(OutboundPolicy policy, string target)
    {
        var (resiliency, refs) = (policy.Resiliency, policy.Refs);
        var builder = new ResiliencePipelineBuilder { TimeProvider = time, Name = target };
        if (ResiliencyPolicies.RetryOf(resiliency, refs) is { } retry)
        {
            builder.AddRetry(ResiliencyPolicies.WithBackoff<RetryStrategyOptions, object>(new RetryStrategyOptions
            {
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Exception is { } ex &&
                    !(ex is OperationCanceledException && args.Context.CancellationToken.IsCancellationRequested) && ResiliencyPolicies.IsComponentFailure(ex)),
            }, retry));
        }
        if (ResiliencyPolicies.BreakerOf(resiliency, refs, time) is { } breaker)
        {
            builder.AddStrategy(_ => new ComponentCircuitBreakerStrategy(breaker, target));
        }
        return ResiliencyPolicies.AddTimeout(builder, resiliency, refs).Build();
    }
}
