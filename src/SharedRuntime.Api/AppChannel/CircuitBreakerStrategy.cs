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
