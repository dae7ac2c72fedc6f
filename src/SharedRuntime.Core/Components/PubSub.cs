namespace SharedRuntime.Components;

/// <summary>
/// A message as handed to a broker: the bytes to deliver (a CloudEvent unless raw) and its metadata.
/// <see cref="PublisherAppId"/> is the app that really published it, set by the runtime (never from the request): brokers
/// carry it apart from <see cref="Metadata"/>, so no metadata a publisher sends can stand in for it.
/// </summary>
public sealed record PubSubMessage(string Topic, ReadOnlyMemory<byte> Data, string ContentType, IReadOnlyDictionary<string, string> Metadata)
{
    public string? PublisherAppId { get; init; }
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

    public string? Undecodable { get; init; }
}

/// <summary>Bounds every broker applies, whatever its backend.</summary>
public static class PubSubLimits
{
    /// <summary>How often a message is delivered before it ends (dead-letter topic, or dropped): component metadata <c>maxDeliveryAttempts</c>.</summary>
    public const int DefaultMaxDeliveryAttempts = 10;

    /// <summary>The most <c>maxDeliveryAttempts</c> may be set to.</summary>
    public const int MaxDeliveryAttemptsCeiling = 1000;

    /// <summary>
    /// <c>maxDeliveryAttempts</c> (also Dapr JetStream's <c>maxDeliver</c>) from component metadata: a whole number from
    /// 1 to <see cref="MaxDeliveryAttemptsCeiling"/>; missing means <see cref="DefaultMaxDeliveryAttempts"/>.
    /// </summary>
    public static int MaxDeliveryAttempts(ComponentContext context)
    {
        var text = context.GetMetadata("maxDeliveryAttempts") ?? context.GetMetadata("maxDeliver");
        if (string.IsNullOrEmpty(text))
        {
            return DefaultMaxDeliveryAttempts;
        }
        return int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var value) && value is >= 1 and <= MaxDeliveryAttemptsCeiling
            ? value
            : throw new ComponentException($"metadata 'maxDeliveryAttempts' must be a whole number from 1 to {MaxDeliveryAttemptsCeiling}, not '{text}'");
    }
}

/// <summary>
/// The broker refused a message because of the message itself (its topic names a key of another type, or it is
/// larger than the server takes): the publisher's error, not a backend failure, so it never counts against a breaker.
/// </summary>
public sealed class PubSubMessageRejectedException(string message, Exception? inner = null) : ArgumentException(message, inner);

/// <summary>What a broker's bound refused.</summary>
public enum PubSubLimit
{
    /// <summary>A subscription of the topic holds as many undelivered events as it may.</summary>
    QueueFull,
    /// <summary>The broker holds as many topics as it may.</summary>
    TopicsExceeded,
}

/// <summary>
/// A broker's bound refused the message: the publisher is asked to try again later (a queue full), or to use a topic
/// that exists. Not a backend failure.
/// </summary>
public sealed class PubSubLimitException(PubSubLimit limit, string message) : InvalidOperationException(message)
{
    public PubSubLimit Limit { get; } = limit;
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

public interface ISecretStore : IComponent
{
    /// <summary>The secret's values (one or several keys), or null when it does not exist.</summary>
    ValueTask<IReadOnlyDictionary<string, string>?> GetSecretAsync(string name, IReadOnlyDictionary<string, string> metadata, CancellationToken cancellationToken);

    /// <summary>Every secret: name to its values.</summary>
    ValueTask<IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>>> GetBulkSecretAsync(IReadOnlyDictionary<string, string> metadata, CancellationToken cancellationToken);
}

/// <summary>An output binding request (Dapr: data, metadata, operation).</summary>
public sealed record BindingRequest(string Operation, ReadOnlyMemory<byte> Data, IReadOnlyDictionary<string, string> Metadata);

public sealed record BindingResponse(ReadOnlyMemory<byte> Data, IReadOnlyDictionary<string, string> Metadata, string? ContentType = null);

public interface IOutputBinding : IComponent
{
    IReadOnlyList<string> Operations { get; }

    ValueTask<BindingResponse> InvokeAsync(BindingRequest request, CancellationToken cancellationToken);
}
