using System.Text;

namespace SharedRuntime.Components.PubSub;

/// <summary>
/// <c>pubsub.jetstream</c> metadata, named as in Dapr where Dapr has the setting: <c>natsURL</c> (required, for
/// example nats://localhost:4222), <c>streamName</c> (default: the component's name; created when missing, and each
/// topic is added to its subjects on first use), <c>deliverPolicy</c> (<c>new</c>, the default: a new consumer group
/// starts at the end like Redis's <c>$</c>; or <c>all</c>), <c>ackWait</c> (default 30s: a message neither acked nor
/// nacked, for example because the runtime stopped, is delivered again after this), <c>memoryStorage</c> (default
/// false), <c>concurrency</c> (default 10: most handler calls at once per subscription, besides the subscriber's own
/// bound), <c>maxDeliver</c> or <c>maxDeliveryAttempts</c> (default 10, at most 1000: the consumer's MaxDeliver, so a
/// message answered Retry again and again ends instead of holding a slot of MaxAckPending for ever), and SharedRuntime's
/// <c>nakDelay</c> (default 1s: how long a message answered Retry waits before it is delivered again),
/// <c>maxSubjects</c> (default 1000, at most 10,000: topics the runtime adds to the stream's subjects; beyond, publishing
/// to or subscribing a new topic is refused) and <c>maxMsgsPerSubject</c> (default 10,000, at most 1,000,000: set on a
/// stream the runtime creates or that has no such limit, so no topic grows without bound).
/// </summary>
internal sealed record JetStreamOptions(
    string Url,
    string StreamName,
    bool DeliverAll,
    TimeSpan AckWait,
    TimeSpan NakDelay,
    bool MemoryStorage,
    int Concurrency,
    int MaxDeliveryAttempts,
    int MaxSubjects,
    long MaxMsgsPerSubject)
{
    public const int DefaultMaxSubjects = 1000;
    public const int MaxSubjectsCeiling = 10_000;
    public const int DefaultMaxMsgsPerSubject = 10_000;
    public const int MaxMsgsPerSubjectCeiling = 1_000_000;

    public static JetStreamOptions From(ComponentContext context)
    {
        var url = MetadataValues.String(context, "natsURL")
            ?? throw new ComponentException("metadata 'natsURL' is required (for example nats://localhost:4222)");
        var deliverAll = MetadataValues.String(context, "deliverPolicy") switch
        {
            null or "new" => false,
            "all" => true,
            var other => throw new ComponentException($"metadata 'deliverPolicy' must be new or all, not '{other}'"),
        };
        return new JetStreamOptions(
            url,
            Name(MetadataValues.String(context, "streamName") ?? context.Name),
            deliverAll,
            MetadataValues.Duration(context, "ackWait", TimeSpan.FromSeconds(30)),
            MetadataValues.Duration(context, "nakDelay", TimeSpan.FromSeconds(1)),
            MetadataValues.Bool(context, "memoryStorage", false),
            Math.Max(1, MetadataValues.Int(context, "concurrency", 10)),
            PubSubLimits.MaxDeliveryAttempts(context),
            Within(context, "maxSubjects", DefaultMaxSubjects, MaxSubjectsCeiling),
            Within(context, "maxMsgsPerSubject", DefaultMaxMsgsPerSubject, MaxMsgsPerSubjectCeiling));
    }

    private static int Within(ComponentContext context, string name, int fallback, int ceiling) =>
        MetadataValues.Int(context, name, fallback) is var value and >= 1 && value <= ceiling
            ? value
            : throw new ComponentException($"metadata '{name}' must be from 1 to {ceiling}");

    /// <summary>A stream or consumer name: NATS refuses <c>. * &gt;</c>, path separators and white space in them.</summary>
    internal static string Name(string text)
    {
        var builder = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            builder.Append(c is '.' or '*' or '>' or '/' or '\\' || char.IsWhiteSpace(c) || char.IsControl(c) ? '_' : c);
        }
        return builder.ToString();
    }
}
