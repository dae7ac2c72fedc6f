using Polly;
using Polly.Timeout;
using SharedRuntime.Admission;

namespace SharedRuntime.AppChannel;

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
