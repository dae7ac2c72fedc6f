using Polly;
using Polly.Timeout;
using SharedRuntime.Admission;

namespace SharedRuntime.AppChannel;

/// <summary>
/// Puts a <see cref="CircuitBreaker"/> into a Polly pipeline: an open circuit fails the call at once with
/// <see cref="CircuitOpenException"/>. Only the app's own failures count (see <see cref="AppCallVerdicts"/>).
/// </summary>
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
        switch (AppCallVerdicts.Of(outcome, context))
        {
            case AppCallVerdict.Success:
                breaker.Record(generation, success: true);
                break;
            case AppCallVerdict.AppFailure:
                breaker.Record(generation, success: false);
                break;
            default:
                breaker.Abandon(generation);
                break;
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
        breaker.Finish(generation, context, outcome.Exception, success: outcome.Exception is null || !ResiliencyPolicies.IsComponentFailure(outcome.Exception));
        return outcome;
    }
}

internal enum AppCallVerdict { Success, AppFailure, NotTheApps }

/// <summary>Whose doing the outcome of one call into an app was: what a breaker counts and a retry repeats.</summary>
internal static class AppCallVerdicts
{
    /// <summary>
    /// An answer the call's classification accepts is a success; a failed answer (a 5xx, for deliveries also a
    /// RETRY), an unreachable app and a timeout are the app's failures. A request the caller got wrong, a caller that
    /// gave up or stalled its body, and a call never made (open circuit, full channel) are nobody's failure.
    /// </summary>
    public static AppCallVerdict Of(Outcome<AppCallResult> outcome, ResilienceContext context) => outcome switch
    {
        { Exception: null, Result.Failed: true } => AppCallVerdict.AppFailure,
        { Exception: null } => AppCallVerdict.Success,
        { Exception: CallerFaultException or CircuitOpenException or AppBusyException or FairQueueFullException } => AppCallVerdict.NotTheApps,
        { Exception: OperationCanceledException } when context.CancellationToken.IsCancellationRequested => AppCallVerdict.NotTheApps,
        { Exception: TimeoutRejectedException } when context.Properties.GetValue(ResiliencyPolicies.CallerBody, null) is { IsCallersFault: true } => AppCallVerdict.NotTheApps,
        _ => AppCallVerdict.AppFailure,
    };
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
