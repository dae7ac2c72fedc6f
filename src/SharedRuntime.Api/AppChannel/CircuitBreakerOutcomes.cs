using Polly;

namespace SharedRuntime.AppChannel;

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
