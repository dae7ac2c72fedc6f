namespace SharedRuntime.Components;

/// <summary>
/// A message as handed to a broker: the bytes to deliver (a CloudEvent unless raw) and its metadata.
/// <see cref="PublisherAppId"/> is the app that really published it, set by the runtime (never from the request): brokers
/// carry it apart from <see cref="Metadata"/>, so no metadata a publisher sends can stand in for it.
/// </summary>
public sealed record PubSubMessage(string Topic, ReadOnlyMemory<byte> Data, string ContentType, IReadOnlyDictionary<string, string> Metadata)
{
    public string? PublisherAppId { get; init; }

    /// <summary>When the message expires (publish metadata <c>ttlInSeconds</c>): brokers carry it, and it is not delivered after.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }
}

/// <summary>What a subscriber handler answers for one delivered message.</summary>
public enum DeliveryOutcome
{
    /// <summary>Processed: acknowledge to the broker.</summary>
    Success,
    /// <summary>Not processed now: deliver again later (the broker keeps it), up to the broker's delivery attempt bound.</summary>
    Retry,
    /// <summary>Discard (the caller dead-letters it first when configured).</summary>
    Drop,
}

/// <summary>
/// A received message with the broker's delivery attempt count (1 on the first delivery) and the publisher the broker
/// carried with it (null when it was published by something other than this runtime). <see cref="Undecodable"/> says
/// why the broker could not read the entry (its content type or metadata are lost): such a message can never be
/// delivered as published.
/// </summary>
public sealed record ReceivedMessage(string Topic, ReadOnlyMemory<byte> Data, string ContentType, IReadOnlyDictionary<string, string> Metadata, int Attempt)
{
    public string? PublisherAppId { get; init; }

    /// <summary>When the message expires, as the broker carried it; null when it does not.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    public string? Undecodable { get; init; }
}

public interface IPubSubBroker : IComponent
{
    /// <summary>How often a message is delivered at most; after that the broker never delivers it again.</summary>
    int MaxDeliveryAttempts => PubSubLimits.DefaultMaxDeliveryAttempts;

    ValueTask PublishAsync(PubSubMessage message, CancellationToken cancellationToken);

    /// <summary>
    /// Starts delivering <paramref name="topic"/> to <paramref name="handler"/> as consumer group
    /// <paramref name="consumerGroup"/>: every group receives every message once; a message is acknowledged only
    /// after the handler returned Success or Drop. At most <paramref name="maxInFlight"/> handler calls run at once;
    /// further messages wait in the broker. A message answered Retry (or whose handler threw) is delivered again, at
    /// most <see cref="MaxDeliveryAttempts"/> times in all. Dispose the result to stop.
    /// </summary>
    ValueTask<IAsyncDisposable> SubscribeAsync(
        string topic,
        string consumerGroup,
        int maxInFlight,
        Func<ReceivedMessage, CancellationToken, ValueTask<DeliveryOutcome>> handler,
        CancellationToken cancellationToken);
}
