using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace SharedRuntime.Components;

/// <summary>Opening a Redis connection the same way for every Redis component: connect, log its failures and recoveries, check it answers.</summary>
internal static class RedisConnection
{
    public static async Task<ConnectionMultiplexer> OpenAsync(ConfigurationOptions configuration, string endpoint, ILogger logger, CancellationToken cancellationToken)
    {
        var connection = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
        connection.ConnectionFailed += (_, e) => BackendsLog.RedisConnectionFailed(logger, endpoint, e.FailureType.ToString(), e.Exception);
        connection.ConnectionRestored += (_, _) => BackendsLog.RedisConnectionRestored(logger, endpoint);
        try
        {
            await connection.GetDatabase().PingAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw new ComponentException($"redis at {endpoint} is not reachable: {ex.Message}", ex);
        }
    }
}
