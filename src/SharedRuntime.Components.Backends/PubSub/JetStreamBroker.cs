using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace SharedRuntime.Components.PubSub;

/// <summary>
/// <c>pubsub.jetstream</c> on NATS JetStream: a topic is a subject of one stream (created when missing); each
/// message carries its content type and metadata as headers. A consumer group is a durable pull consumer of its own
/// per topic, with explicit acks and <c>MaxAckPending</c> set to the subscriber's in-flight bound. Success acks,
/// Drop terminates (never delivered again), Retry or an exception naks with <c>nakDelay</c>; a message left unanswered
/// by a stopped runtime is delivered again after <c>ackWait</c>. A consumer delivers a message <c>maxDeliver</c> times at
/// most. The publishing app travels in a header of its own, apart from the metadata a publisher sends.
/// </summary>
internal sealed class JetStreamBroker(JetStreamOptions options, TimeProvider time, ILogger<JetStreamBroker> logger) : IPubSubBroker
{
    internal const string ContentTypeHeader = "Content-Type";
    internal const string MetadataHeader = "SharedRuntime-Metadata";
    internal const string PublisherHeader = "SharedRuntime-Publisher";
    internal const string ExpirationHeader = "SharedRuntime-Expiration";
    private readonly ConcurrentDictionary<string, Task> _subjects = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _streamUpdate = new(1, 1);
    private NatsConnection? _connection;
    private NatsJSContext? _js;

    public IReadOnlyList<string> Capabilities { get; } = [];

    internal JetStreamOptions Options => options;

    public int MaxDeliveryAttempts => options.MaxDeliveryAttempts;

    internal ILogger Logger => logger;

    internal TimeProvider Time => time;

    internal NatsJSContext JetStream => _js ?? throw new ComponentException("jetstream pubsub is not initialised");

    public async ValueTask InitAsync(CancellationToken cancellationToken)
    {
        var connection = new NatsConnection(new NatsOpts { Url = options.Url, Name = "sharedruntime", ConnectTimeout = TimeSpan.FromSeconds(5) });
        try
        {
            await connection.ConnectAsync().AsTask().WaitAsync(cancellationToken).ConfigureAwait(false);
            _js = new NatsJSContext(connection);
            _connection = connection;
            await EnsureStreamAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NatsException or TimeoutException)
        {
            _connection = null;
            await connection.DisposeAsync().ConfigureAwait(false);
            throw new ComponentException($"nats at {options.Url} is not reachable: {ex.Message}", ex);
        }
    }

    private async Task EnsureStreamAsync(CancellationToken cancellationToken)
    {
        try
        {
            await JetStream.GetStreamAsync(options.StreamName, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (NatsJSApiException ex) when (ex.Error.Code == 404)
        {
            // Created with a placeholder subject: topics are added as they are used.
            var config = new StreamConfig(options.StreamName, [options.StreamName + ".sharedruntime"])
            {
                Storage = options.MemoryStorage ? StreamConfigStorage.Memory : StreamConfigStorage.File,
                MaxMsgsPerSubject = options.MaxMsgsPerSubject,
            };
            try
            {
                await JetStream.CreateStreamAsync(config, cancellationToken).ConfigureAwait(false);
            }
            catch (NatsJSApiException created) when (created.Error.ErrCode == 10058)
            {
                // Created by another runtime in the same moment.
            }
        }
    }

    /// <summary>Adds <paramref name="topic"/> to the stream's subjects once per broker.</summary>
    internal Task EnsureSubjectAsync(string topic)
    {
        if (topic.Length == 0 || topic.Any(c => c is '*' or '>' || char.IsWhiteSpace(c)) || topic.StartsWith('.') || topic.EndsWith('.') || topic.Contains("..", StringComparison.Ordinal))
        {
            throw new PubSubMessageRejectedException($"topic '{topic}' is not a valid NATS subject");
        }
        var task = _subjects.GetOrAdd(topic, AddSubjectAsync);
        if (task.IsFaulted)
        {
            _subjects.TryRemove(new KeyValuePair<string, Task>(topic, task));
        }
        return task;
    }

    private async Task AddSubjectAsync(string topic)
    {
        await _streamUpdate.WaitAsync().ConfigureAwait(false);
        try
        {
            var stream = await JetStream.GetStreamAsync(options.StreamName).ConfigureAwait(false);
            var config = stream.Info.Config;
            var subjects = config.Subjects ?? [];
            if (!subjects.Contains(topic))
            {
                // The placeholder subject does not count.
                if (subjects.Count(s => s != options.StreamName + ".sharedruntime") >= options.MaxSubjects)
                {
                    PubSubLog.SubjectsFull(logger, options.StreamName, options.MaxSubjects, topic);
                    throw new PubSubLimitException(PubSubLimit.TopicsExceeded, $"jetstream stream {options.StreamName} holds {options.MaxSubjects} topics, its limit");
                }
                config.Subjects = [.. subjects, topic];
                if (config.MaxMsgsPerSubject <= 0)
                {
                    config.MaxMsgsPerSubject = options.MaxMsgsPerSubject;
                }
                await JetStream.UpdateStreamAsync(config).ConfigureAwait(false);
            }
        }
        finally
        {
            _streamUpdate.Release();
        }
    }

    public async ValueTask PublishAsync(PubSubMessage message, CancellationToken cancellationToken)
    {
        var headers = new NatsHeaders
        {
            [ContentTypeHeader] = message.ContentType,
            [MetadataHeader] = JsonSerializer.Serialize(message.Metadata, RedisPubSubJson.Default.IReadOnlyDictionaryStringString),
        };
        if (message.PublisherAppId is { } publisher)
        {
            headers[PublisherHeader] = publisher;
        }
        if (message.ExpiresAt is { } expiresAt)
        {
            headers[ExpirationHeader] = expiresAt.ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        try
        {
            await EnsureSubjectAsync(message.Topic).WaitAsync(cancellationToken).ConfigureAwait(false);
            var ack = await JetStream.PublishAsync(message.Topic, message.Data.ToArray(), headers: headers, cancellationToken: cancellationToken).ConfigureAwait(false);
            ack.EnsureSuccess();
        }
        catch (NatsPayloadTooLargeException ex)
        {
            PubSubLog.Rejected(logger, message.Topic, ex.Message);
            throw new PubSubMessageRejectedException($"the event is larger than the nats server takes: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is NatsException or TimeoutException)
        {
            throw new ComponentException($"jetstream publish to {message.Topic} failed: {ex.Message}", ex);
        }
    }

    public async ValueTask<IAsyncDisposable> SubscribeAsync(string topic, string consumerGroup, int maxInFlight,
        Func<ReceivedMessage, CancellationToken, ValueTask<DeliveryOutcome>> handler, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxInFlight, 1);
        var limit = Math.Min(maxInFlight, options.Concurrency);
        var config = new ConsumerConfig(DurableName(consumerGroup, topic))
        {
            FilterSubject = topic,
            AckPolicy = ConsumerConfigAckPolicy.Explicit,
            DeliverPolicy = options.DeliverAll ? ConsumerConfigDeliverPolicy.All : ConsumerConfigDeliverPolicy.New,
            AckWait = options.AckWait,
            MaxAckPending = limit,
            MaxDeliver = options.MaxDeliveryAttempts,
        };
        INatsJSConsumer consumer;
        try
        {
            await EnsureSubjectAsync(topic).WaitAsync(cancellationToken).ConfigureAwait(false);
            consumer = await JetStream.CreateOrUpdateConsumerAsync(options.StreamName, config, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NatsException or TimeoutException)
        {
            throw new ComponentException($"jetstream consumer for group {consumerGroup} on {topic} could not be created: {ex.Message}", ex);
        }
        return JetStreamSubscription.Start(this, consumer, topic, consumerGroup, limit, handler);
    }

    /// <summary>One durable per group and topic: readable, and unique through a hash of both.</summary>
    internal static string DurableName(string group, string topic)
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(group + "\n" + topic)))[..12];
        var readable = JetStreamOptions.Name($"{group}-{topic}");
        return $"{readable[..Math.Min(readable.Length, 48)]}-{hash}";
    }

    /// <summary>The message as received; one whose headers cannot be read says why in <see cref="ReceivedMessage.Undecodable"/>.</summary>
    internal static ReceivedMessage ToReceived(string topic, INatsJSMsg<byte[]> message)
    {
        IReadOnlyDictionary<string, string> metadata = new Dictionary<string, string>();
        var contentType = "";
        string? publisher = null;
        string? problem = null;
        DateTimeOffset? expiresAt = null;
        if (message.Headers is { } headers)
        {
            if (headers.TryGetValue(ExpirationHeader, out var expiration) &&
                long.TryParse(expiration.ToString(), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var milliseconds))
            {
                expiresAt = DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(milliseconds, 0, 253402300799999));
            }
            if (headers.TryGetValue(ContentTypeHeader, out var type))
            {
                contentType = type.ToString();
            }
            if (headers.TryGetValue(PublisherHeader, out var from) && from.ToString() is { Length: > 0 } name)
            {
                publisher = name;
            }
            if (headers.TryGetValue(MetadataHeader, out var json))
            {
                try
                {
                    metadata = JsonSerializer.Deserialize(json.ToString(), RedisPubSubJson.Default.IReadOnlyDictionaryStringString) ?? metadata;
                }
                catch (JsonException ex)
                {
                    problem = $"its metadata header is not a JSON object of strings: {ex.Message}";
                }
            }
        }
        var attempt = (int)Math.Min(int.MaxValue, message.Metadata?.NumDelivered ?? 1);
        return new ReceivedMessage(topic, message.Data ?? [], contentType, metadata, attempt) { PublisherAppId = publisher, ExpiresAt = expiresAt, Undecodable = problem };
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
        _streamUpdate.Dispose();
    }
}
