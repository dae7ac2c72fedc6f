namespace SharedRuntime.Components;

/// <summary>A message as handed to a broker: the bytes to deliver (a CloudEvent unless raw) and its metadata.</summary>
public sealed record PubSubMessage(string Topic, ReadOnlyMemory<byte> Data, string ContentType, IReadOnlyDictionary<string, string> Metadata);

/// <summary>What a subscriber handler answers for one delivered message.</summary>
public enum DeliveryOutcome
{
    /// <summary>Processed: acknowledge to the broker.</summary>
    Success,
    /// <summary>Not processed now: deliver again later (the broker keeps it).</summary>
    Retry,
    /// <summary>Discard (the caller dead-letters it first when configured).</summary>
    Drop,
}

/// <summary>A received message with the broker's delivery attempt count (1 on the first delivery).</summary>
public sealed record ReceivedMessage(string Topic, ReadOnlyMemory<byte> Data, string ContentType, IReadOnlyDictionary<string, string> Metadata, int Attempt);

public interface IPubSubBroker : IComponent
{
    ValueTask PublishAsync(PubSubMessage message, CancellationToken cancellationToken);

    /// <summary>
    /// Starts delivering <paramref name="topic"/> to <paramref name="handler"/> as consumer group
    /// <paramref name="consumerGroup"/>: every group receives every message once; a message is acknowledged only
    /// after the handler returned Success or Drop. At most <paramref name="maxInFlight"/> handler calls run at once;
    /// further messages wait in the broker. Dispose the result to stop.
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
