using Microsoft.Extensions.Logging;

namespace SharedRuntime.Diagnostics;

internal static partial class ApiLog
{
    [LoggerMessage(2001, LogLevel.Debug, "Request without a known API token refused ({Path})")]
    public static partial void Unauthenticated(ILogger logger, string path);

    [LoggerMessage(2006, LogLevel.Information, "Tenant {AppId}: {Count} requests refused, {Reason}, since the last such line (one line per tenant and reason at most every {IntervalSeconds} s)")]
    public static partial void Refused(ILogger logger, string appId, int count, string reason, int intervalSeconds);

    [LoggerMessage(2007, LogLevel.Information, "Tenant {AppId}: {Count} requests refused, {Reason}, since the last such line (one line per tenant and reason at most every {IntervalSeconds} s); the last: {Api} answered {Status} {ErrorCode}: {Message}")]
    public static partial void RefusedWithError(ILogger logger, string appId, int count, string reason, int intervalSeconds, string api, int status, string errorCode, string message);

    [LoggerMessage(2003, LogLevel.Error, "Tenant {AppId}: request {Method} {Path} failed")]
    public static partial void RequestFailed(ILogger logger, Exception exception, string appId, string method, string path);

    [LoggerMessage(2004, LogLevel.Information, "Tenant {AppId}: {Api} answered {Status} {ErrorCode}: {Message}")]
    public static partial void ApiError(ILogger logger, string appId, string api, int status, string errorCode, string message);

    [LoggerMessage(2005, LogLevel.Information, "Tenant {AppId} asked the runtime to shut down; a shared runtime ignores that")]
    public static partial void ShutdownIgnored(ILogger logger, string appId);
}
