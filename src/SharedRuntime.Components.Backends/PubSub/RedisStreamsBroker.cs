using System.Text.Json;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace SharedRuntime.Components.PubSub;

/// <summary>
/// <c>pubsub.redis</c> on Redis Streams, like Dapr's: a topic is a stream, each message one entry with the fields
/// <c>data</c>, <c>contentType</c> and <c>metadata</c> (JSON). A consumer group is a stream consumer group created at
/// the end of the stream (<c>$</c>), so it receives what is published after it first subscribed. Each subscription
/// reads as a consumer of its own (unique in this process); a message stays pending until the handler answers
/// Success or Drop (XACK). Pending messages idle longer than <c>processingTimeout</c>, whether answered Retry here or
/// left behind by a runtime that stopped, are claimed with XAUTOCLAIM every <c>redeliverInterval</c> and delivered again.
/// </summary>
internal sealed class RedisStreamsBroker(RedisPubSubOptions options, TimeProvider time, ILogger<RedisStreamsBroker> logger) : IPubSubBroker
{
    internal const string DataField = "data";
    internal const string ContentTypeField = "contentType";
    internal const string MetadataField = "metadata";
    private static readonly string ProcessTag = $"{Environment.MachineName}-{Environment.ProcessId}";
    private ConnectionMultiplexer? _connection;
    private int _subscriptions;

    public IReadOnlyList<string> Capabilities { get; } = [];

    internal RedisPubSubOptions Options => options;

    internal TimeProvider Time => time;

    internal ILogger Logger => logger;

    internal IDatabase Database => (_connection ?? throw new ComponentException("redis pubsub is not initialised")).GetDatabase();

    public async ValueTask InitAsync(CancellationToken cancellationToken)
    {
        _connection = await RedisConnection.OpenAsync(options.Configuration, options.Endpoint, logger, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask PublishAsync(PubSubMessage message, CancellationToken cancellationToken)
    {
        NameValueEntry[] fields =
        [
            new(DataField, message.Data),
            new(ContentTypeField, message.ContentType),
            new(MetadataField, JsonSerializer.Serialize(message.Metadata, RedisPubSubJson.Default.IReadOnlyDictionaryStringString)),
        ];
        try
        {
            await Database.StreamAddAsync(message.Topic, fields, maxLength: options.MaxLenApprox, useApproximateMaxLength: true)
                .WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new ComponentException($"redis publish to {message.Topic} failed: {ex.Message}", ex);
        }
    }

    public async ValueTask<IAsyncDisposable> SubscribeAsync(string topic, string consumerGroup, int maxInFlight,
        Func<ReceivedMessage, CancellationToken, ValueTask<DeliveryOutcome>> handler, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxInFlight, 1);
        var consumer = $"{options.ConsumerPrefix}-{ProcessTag}-{Guid.NewGuid():N}-{Interlocked.Increment(ref _subscriptions)}";
        var subscription = new RedisStreamSubscription(this, topic, consumerGroup, consumer, Math.Min(maxInFlight, options.Concurrency), handler);
        try
        {
            await subscription.EnsureGroupAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new ComponentException($"redis consumer group {consumerGroup} on {topic} could not be created: {ex.Message}", ex);
        }
        subscription.Start();
        return subscription;
    }

    internal static ReceivedMessage ToReceived(string topic, StreamEntry entry, int attempt)
    {
        byte[] data = [];
        var contentType = "";
        IReadOnlyDictionary<string, string> metadata = new Dictionary<string, string>();
        foreach (var field in entry.Values)
        {
            switch ((string?)field.Name)
            {
                case DataField:
                    data = (byte[]?)field.Value ?? [];
                    break;
                case ContentTypeField:
                    contentType = (string?)field.Value ?? "";
                    break;
                case MetadataField when field.Value.HasValue:
                    metadata = JsonSerializer.Deserialize((string)field.Value!, RedisPubSubJson.Default.IReadOnlyDictionaryStringString) ?? metadata;
                    break;
            }
        }
        return new ReceivedMessage(topic, data, contentType, metadata, attempt);
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(IReadOnlyDictionary<string, string>))]
internal sealed partial class RedisPubSubJson : System.Text.Json.Serialization.JsonSerializerContext;
