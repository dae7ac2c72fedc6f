using Polly;

namespace SharedRuntime.AppChannel;

/// <summary>Puts a <see cref="CircuitBreaker"/> into a Polly pipeline: an open circuit fails the call at once with <see cref="CircuitOpenException"/>.</summary>
internal sealed class CircuitBreakerStrategy(CircuitBreaker breaker, string target) : ResilienceStrategy<AppCallResult>
{
    protected override async ValueTask<Outcome<AppCallResult>> ExecuteCore<TState>(
        Func<ResilienceContext, TState, ValueTask<Outcome<AppCallResult>>> callback, ResilienceContext context, TState state)
    {
        if (!breaker.TryAcquire(out var generation))
        {
            return Outcome.FromException<AppCallResult>(new CircuitOpenException(target));
        }
        var outcome = await callback(context, state).ConfigureAwait(context.ContinueOnCapturedContext);
        if (context.CancellationToken.IsCancellationRequested && outcome.Exception is OperationCanceledException)
        {
            breaker.Abandon(generation);
        }
        else
        {
            breaker.Record(generation, outcome.Exception is null && outcome.Result is { Failed: false });
        }
        return outcome;
    }
}

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
        if (context.CancellationToken.IsCancellationRequested && outcome.Exception is OperationCanceledException)
        {
            breaker.Abandon(generation);
        }
        else
        {
            breaker.Record(generation, outcome.Exception is null || !ResiliencyPolicies.IsComponentFailure(outcome.Exception));
        }
        return outcome;
    }
}
