using System.Text;

namespace SharedRuntime.Components.PubSub;

/// <summary>
/// <c>pubsub.jetstream</c> metadata, named as in Dapr where Dapr has the setting: <c>natsURL</c> (required, for
/// example nats://localhost:4222), <c>streamName</c> (default: the component's name; created when missing, and each
/// topic is added to its subjects on first use), <c>deliverPolicy</c> (<c>new</c>, the default: a new consumer group
/// starts at the end like Redis's <c>$</c>; or <c>all</c>), <c>ackWait</c> (default 30s: a message neither acked nor
/// nacked, for example because the runtime stopped, is delivered again after this), <c>memoryStorage</c> (default
/// false), <c>concurrency</c> (default 10: most handler calls at once per subscription, besides the subscriber's own
/// bound), and SharedRuntime's <c>nakDelay</c> (default 1s: how long a message answered Retry waits before it is
/// delivered again).
/// </summary>
internal sealed record JetStreamOptions(
    string Url,
    string StreamName,
    bool DeliverAll,
    TimeSpan AckWait,
    TimeSpan NakDelay,
    bool MemoryStorage,
    int Concurrency)
{
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
            Math.Max(1, MetadataValues.Int(context, "concurrency", 10)));
    }

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
