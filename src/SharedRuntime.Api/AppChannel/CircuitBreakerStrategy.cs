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
        breaker.Finish(generation, context, outcome.Exception, success: outcome.Exception is null && outcome.Result is { Failed: false });
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
        breaker.Finish(generation, context, outcome.Exception, success: outcome.Exception is null || !ResiliencyPolicies.IsComponentFailure(outcome.Exception));
        return outcome;
    }
}

internal static class CircuitBreakerOutcomes
{
    /// <summary>Records a call's end; a call its caller gave up on counts neither way.</summary>
    public static void Finish(this CircuitBreaker breaker, long generation, ResilienceContext context, Exception? exception, bool success)
    {
        if (context.CancellationToken.IsCancellationRequested && exception is OperationCanceledException)
        {
            breaker.Abandon(generation);
        }
        else
        {
            breaker.Record(generation, success);
        }
    }
}
