using StackExchange.Redis;
using SharedRuntime.Components.State;

namespace SharedRuntime.Components.PubSub;

/// <summary>
/// <c>pubsub.redis</c> metadata, named as in Dapr. Connection: <c>redisHost</c>, <c>redisUsername</c>,
/// <c>redisPassword</c>, <c>enableTLS</c>, <c>redisDB</c>, <c>dialTimeout</c>, <c>readTimeout</c> (as for
/// <c>state.redis</c>). Streams: <c>consumerID</c> (a readable prefix of this process's consumer names; never the
/// group, which is always the subscribing app's), <c>processingTimeout</c> (default 60s: a pending message idle that
/// long is claimed and delivered again), <c>redeliverInterval</c> (default 60s: how often pending messages are
/// checked; 0 turns redelivery off), <c>queueDepth</c> (default 100: most entries read at once), <c>concurrency</c>
/// (default 10: most handler calls at once per subscription, besides the subscriber's own bound),
/// <c>maxLenApprox</c> (default 10,000, at most 1,000,000: XADD trims the stream to about this many entries, so
/// no topic grows without bound), <c>maxDeliveryAttempts</c> (default 10, at most 1000: a pending message delivered
/// that often is acknowledged and not delivered again), <c>pollInterval</c> (default 100ms: wait between reads that
/// found nothing; SharedRuntime's, as blocking reads would stall the shared connection).
/// </summary>
internal sealed record RedisPubSubOptions(
    ConfigurationOptions Configuration,
    string Endpoint,
    string ConsumerPrefix,
    TimeSpan ProcessingTimeout,
    TimeSpan RedeliverInterval,
    int QueueDepth,
    int Concurrency,
    long MaxLenApprox,
    TimeSpan PollInterval,
    int MaxDeliveryAttempts)
{
    public const int DefaultMaxLenApprox = 10_000;
    public const int MaxLenApproxCeiling = 1_000_000;

    public static RedisPubSubOptions From(ComponentContext context)
    {
        var connection = RedisStateOptions.From(context);
        var maxLen = MetadataValues.Int(context, "maxLenApprox", DefaultMaxLenApprox);
        if (maxLen is < 1 or > MaxLenApproxCeiling)
        {
            throw new ComponentException($"metadata 'maxLenApprox' must be from 1 to {MaxLenApproxCeiling}, not {maxLen}");
        }
        return new RedisPubSubOptions(
            connection.Configuration,
            connection.Endpoint,
            MetadataValues.String(context, "consumerID") ?? "sharedruntime",
            MetadataValues.Duration(context, "processingTimeout", TimeSpan.FromSeconds(60)),
            MetadataValues.Duration(context, "redeliverInterval", TimeSpan.FromSeconds(60)),
            Math.Max(1, MetadataValues.Int(context, "queueDepth", 100)),
            Math.Max(1, MetadataValues.Int(context, "concurrency", 10)),
            maxLen,
            MetadataValues.Duration(context, "pollInterval", TimeSpan.FromMilliseconds(100)),
            PubSubLimits.MaxDeliveryAttempts(context));
    }
}
