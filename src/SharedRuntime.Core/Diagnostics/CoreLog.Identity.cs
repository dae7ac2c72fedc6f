using Microsoft.Extensions.Logging;

namespace SharedRuntime.Diagnostics;

internal static partial class CoreLog
{
    [LoggerMessage(1101, LogLevel.Debug, "The token of app {AppId} is bound to its pods (spec.identity); a request from {Remote}, not one of them, is refused")]
    public static partial void TokenFromForeignAddress(ILogger logger, string appId, string remote);
}
