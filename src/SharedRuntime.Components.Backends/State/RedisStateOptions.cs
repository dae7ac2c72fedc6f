using StackExchange.Redis;

namespace SharedRuntime.Components.State;

/// <summary>
/// <c>state.redis</c> metadata, named as in Dapr: <c>redisHost</c> (host:port, required; several separated by commas),
/// <c>redisUsername</c>, <c>redisPassword</c>, <c>enableTLS</c>, <c>redisDB</c>, <c>redisMaxRetries</c> (or
/// <c>maxRetries</c>, default 3), <c>dialTimeout</c> (default 5s), <c>readTimeout</c> (default 3s; bounds every
/// command), <c>writeTimeout</c> (accepted, covered by readTimeout).
/// </summary>
internal sealed record RedisStateOptions(ConfigurationOptions Configuration, string Endpoint)
{
    public static RedisStateOptions From(ComponentContext context)
    {
        var hosts = MetadataValues.String(context, "redisHost")
            ?? throw new ComponentException("metadata 'redisHost' is required (host:port, for example localhost:6379)");
        var readTimeout = MetadataValues.Duration(context, "readTimeout", TimeSpan.FromSeconds(3));
        var writeTimeout = MetadataValues.Duration(context, "writeTimeout", readTimeout);
        var configuration = new ConfigurationOptions
        {
            User = MetadataValues.String(context, "redisUsername"),
            Password = MetadataValues.String(context, "redisPassword"),
            Ssl = MetadataValues.Bool(context, "enableTLS", false),
            DefaultDatabase = MetadataValues.Int(context, "redisDB", 0),
            ConnectRetry = MetadataValues.Int(context, "redisMaxRetries", MetadataValues.Int(context, "maxRetries", 3)),
            ConnectTimeout = Milliseconds(MetadataValues.Duration(context, "dialTimeout", TimeSpan.FromSeconds(5))),
            AsyncTimeout = Milliseconds(TimeSpan.FromTicks(Math.Max(readTimeout.Ticks, writeTimeout.Ticks))),
            SyncTimeout = Milliseconds(readTimeout),
            // Keep trying in the background instead of failing start-up for good, but fail each command at once while
            // the server is away rather than queueing it: callers see an error, not a hang.
            AbortOnConnectFail = false,
            BacklogPolicy = BacklogPolicy.FailFast,
            ReconnectRetryPolicy = new ExponentialRetry(250, 2000),
            ClientName = "sharedruntime",
        };
        foreach (var host in hosts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            configuration.EndPoints.Add(host.Contains(':', StringComparison.Ordinal) ? host : host + ":6379");
        }
        if (configuration.EndPoints.Count == 0)
        {
            throw new ComponentException("metadata 'redisHost' names no host");
        }
        return new RedisStateOptions(configuration, hosts);
    }

    private static int Milliseconds(TimeSpan value) => (int)Math.Clamp(value.TotalMilliseconds, 1, int.MaxValue);
}
