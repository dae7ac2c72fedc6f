using Polly;

namespace SharedRuntime.AppChannel;

/// <summary>The same breaker for calls into components (<c>targets.components.NAME.outbound</c>): any exception but a caller's cancellation or a request error counts as a failure.</summary>
internal sealed class ComponentCircuitBreakerStrategy(CircuitBreaker breaker, string target) : ResilienceStrategy
{
    protected override async ValueTask<Outcome<TResult>> ExecuteCore<TResult, TState>(
        Func<ResilienceContext, TState, ValueTask<Outcome<TResult>>> callback, ResilienceContext context, TState state)
    {
        if (!breaker.TryAcquire(out var generation))
        {
            return Outcome.FromException<TResult>(new CircuitOpenException(target));
        }
        var outcome = await callback(context, state).ConfigureAwait(context.ContinueOnCapturedContext);
        breaker.Finish(generation, context, outcome.Exception, success: outcome.Exception is null || !ResiliencyPolicies.IsComponentFailure(outcome.Exception));
        return outcome;
    }
}
