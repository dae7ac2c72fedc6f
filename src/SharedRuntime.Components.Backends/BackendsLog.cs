using Microsoft.Extensions.Logging;

namespace SharedRuntime.Components;

internal static partial class BackendsLog
{
    [LoggerMessage(3001, LogLevel.Warning, "Redis connection to {Endpoint} failed ({FailureType}); commands fail until it is back")]
    public static partial void RedisConnectionFailed(ILogger logger, string endpoint, string failureType, Exception? exception);

    [LoggerMessage(3002, LogLevel.Information, "Redis connection to {Endpoint} restored")]
    public static partial void RedisConnectionRestored(ILogger logger, string endpoint);

    [LoggerMessage(3003, LogLevel.Information, "PostgreSQL state table {Table} ready")]
    public static partial void PostgreSqlTableReady(ILogger logger, string table);

    [LoggerMessage(3004, LogLevel.Information, "PostgreSQL state table {Table}: {Count} expired keys removed")]
    public static partial void PostgreSqlExpiredRemoved(ILogger logger, string table, int count);

    [LoggerMessage(3005, LogLevel.Warning, "PostgreSQL state table {Table}: removing expired keys failed; the next sweep tries again")]
    public static partial void PostgreSqlSweepFailed(ILogger logger, string table, Exception exception);

    [LoggerMessage(3006, LogLevel.Information, "State store ({Kind}): usage of prefix {Prefix} was missing and has been seeded by one scan")]
    public static partial void StateUsageSeeded(ILogger logger, string kind, string prefix);

    [LoggerMessage(3010, LogLevel.Warning, "Redis stream {Topic}, consumer group {Group}: reading failed; trying again shortly")]
    public static partial void RedisStreamReadFailed(ILogger logger, string topic, string group, Exception exception);

    [LoggerMessage(3011, LogLevel.Warning, "Redis stream {Topic}, consumer group {Group}: acknowledging failed; the message will be delivered again")]
    public static partial void RedisStreamAckFailed(ILogger logger, string topic, string group, Exception exception);

    [LoggerMessage(3012, LogLevel.Warning, "JetStream topic {Topic}, consumer group {Group}: pulling failed; trying again shortly")]
    public static partial void JetStreamConsumeFailed(ILogger logger, string topic, string group, Exception exception);

    [LoggerMessage(3013, LogLevel.Warning, "JetStream topic {Topic}, consumer group {Group}: answering a message failed; it will be delivered again after ackWait")]
    public static partial void JetStreamAckFailed(ILogger logger, string topic, string group, Exception exception);
}
