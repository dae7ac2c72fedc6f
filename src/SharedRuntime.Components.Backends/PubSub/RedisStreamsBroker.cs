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
/// left behind by a runtime that stopped, are claimed with XAUTOCLAIM every <c>redeliverInterval</c> and delivered again,
/// until they have been delivered <c>maxDeliveryAttempts</c> times (the entry's delivery count in XPENDING). Every XADD
/// trims the stream to about <c>maxLenApprox</c> entries. The publishing app travels in a field of its own,
/// <c>publisher</c>, apart from the metadata a publisher sends.
/// A topic never contains <c>||</c>, so a stream never takes the key of a state entry (<c>appid||key</c>) in a
/// shared database; a key of another type under the topic's name is the publisher's error, not the server's.
/// </summary>
internal sealed class RedisStreamsBroker(RedisPubSubOptions options, TimeProvider time, ILogger<RedisStreamsBroker> logger) : IPubSubBroker
{
    internal const string DataField = "data";
    internal const string ContentTypeField = "contentType";
    internal const string MetadataField = "metadata";
    internal const string PublisherField = "publisher";
    internal const string ExpirationField = "expiration";
    private static readonly string ProcessTag = $"{Environment.MachineName}-{Environment.ProcessId}";
    private ConnectionMultiplexer? _connection;
    private int _subscriptions;

    public IReadOnlyList<string> Capabilities { get; } = [];

    internal RedisPubSubOptions Options => options;

    internal TimeProvider Time => time;

    internal ILogger Logger => logger;

    public int MaxDeliveryAttempts => options.MaxDeliveryAttempts;

    internal IDatabase Database => (_connection ?? throw new ComponentException("redis pubsub is not initialised")).GetDatabase();

    public async ValueTask InitAsync(CancellationToken cancellationToken)
    {
        _connection = await RedisConnection.OpenAsync(options.Configuration, options.Endpoint, logger, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask PublishAsync(PubSubMessage message, CancellationToken cancellationToken)
    {
        CheckTopic(message.Topic);
        NameValueEntry[] fields =
        [
            new(DataField, message.Data),
            new(ContentTypeField, message.ContentType),
            new(MetadataField, JsonSerializer.Serialize(message.Metadata, RedisPubSubJson.Default.IReadOnlyDictionaryStringString)),
            new(PublisherField, message.PublisherAppId ?? ""),
        ];
        if (message.ExpiresAt is { } expiresAt)
        {
            fields = [.. fields, new(ExpirationField, expiresAt.ToUnixTimeMilliseconds())];
        }
        try
        {
            await Database.StreamAddAsync(message.Topic, fields, maxLength: options.MaxLenApprox, useApproximateMaxLength: true)
                .WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (IsRequestError(ex))
        {
            PubSubLog.Rejected(logger, message.Topic, ex.Message);
            throw new PubSubMessageRejectedException($"redis refused the event for topic {message.Topic}: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new ComponentException($"redis publish to {message.Topic} failed: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// An answer about the command, not the server: a key of another type (WRONGTYPE), or a value the server will not
    /// take. The server is fine; the same request would fail again.
    /// </summary>
    internal static bool IsRequestError(RedisServerException ex) =>
        ex.Message.StartsWith("WRONGTYPE", StringComparison.Ordinal) ||
        ex.Message.Contains("string exceeds maximum allowed size", StringComparison.OrdinalIgnoreCase);

    /// <summary>Topics with <c>||</c> could name a state entry's key (<c>appid||key</c>); they are refused before reaching the server.</summary>
    internal static void CheckTopic(string topic)
    {
        if (topic.Contains("||", StringComparison.Ordinal))
        {
            throw new PubSubMessageRejectedException($"topic '{topic}' contains '||', which only state keys may contain");
        }
    }

    public async ValueTask<IAsyncDisposable> SubscribeAsync(string topic, string consumerGroup, int maxInFlight,
        Func<ReceivedMessage, CancellationToken, ValueTask<DeliveryOutcome>> handler, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxInFlight, 1);
        CheckTopic(topic);
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

    /// <summary>The entry as a message; one whose fields cannot be read says why in <see cref="ReceivedMessage.Undecodable"/>.</summary>
    internal static ReceivedMessage ToReceived(string topic, StreamEntry entry, int attempt)
    {
        byte[]? data = null;
        var contentType = "";
        string? publisher = null;
        string? problem = null;
        DateTimeOffset? expiresAt = null;
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
                case PublisherField:
                    publisher = (string?)field.Value is { Length: > 0 } name ? name : null;
                    break;
                case ExpirationField when field.Value.TryParse(out long milliseconds):
                    expiresAt = DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(milliseconds, 0, 253402300799999));
                    break;
                case MetadataField when field.Value.HasValue:
                    try
                    {
                        metadata = JsonSerializer.Deserialize((string)field.Value!, RedisPubSubJson.Default.IReadOnlyDictionaryStringString) ?? metadata;
                    }
                    catch (JsonException ex)
                    {
                        problem = $"its metadata field is not a JSON object of strings: {ex.Message}";
                    }
                    break;
            }
        }
        if (data is null)
        {
            problem ??= "it has no data field";
        }
        return new ReceivedMessage(topic, data ?? [], contentType, metadata, attempt) { PublisherAppId = publisher, ExpiresAt = expiresAt, Undecodable = problem };
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}
