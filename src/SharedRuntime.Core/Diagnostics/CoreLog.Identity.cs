using Microsoft.Extensions.Logging;

namespace SharedRuntime.Diagnostics;

internal static partial class CoreLog
{
    [LoggerMessage(1101, LogLevel.Debug, "The token of app {AppId} is bound to its pods (spec.identity); a request from {Remote}, not one of them, is refused")]
    public static partial void TokenFromForeignAddress(ILogger logger, string appId, string remote);

    [LoggerMessage(1102, LogLevel.Warning, "A projected ServiceAccount token could not be reviewed with the API server (the request is answered 503, nothing is cached): {Problem}")]
    public static partial void TokenReviewFailed(ILogger logger, string problem);

    [LoggerMessage(1103, LogLevel.Warning, "{Count} requests with unknown JWTs refused unreviewed in the last {IntervalSeconds} s (the last from {Remote}): over {PerSecond} TokenReviews per second from one address, or {InFlight} in flight")]
    public static partial void TokenReviewsThrottled(ILogger logger, long count, int intervalSeconds, string remote, int perSecond, int inFlight);
}
