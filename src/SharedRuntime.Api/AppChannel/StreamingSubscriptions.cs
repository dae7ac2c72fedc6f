using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using SharedRuntime.Admission;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Components;
using SharedRuntime.Configuration;
using SharedRuntime.Tenancy;

namespace SharedRuntime.AppChannel;

/// <summary>One event handed to a streaming subscriber: the runtime's id for its answer, and the CloudEvent's fields.</summary>
internal sealed record StreamedEvent(string Id, string CloudEventId, string Source, string Type, string SpecVersion, string DataContentType, ReadOnlyMemory<byte> Data, string Topic, string PubsubName);

/// <summary>
/// Streaming subscriptions (Dapr's gRPC <c>SubscribeTopicEventsAlpha1</c>): an app pulls a topic's events over a stream
/// it keeps open, in its own consumer group, and answers each with SUCCESS, RETRY or DROP, which end the event as an
/// app's answer to a pushed delivery does (DROP to the dead-letter topic when the stream named one). Per tenant at most
/// <see cref="MaxStreamsPerApp"/> streams are open and each holds at most <see cref="MaxInFlightPerStream"/> events
/// not yet answered; further events wait in the broker. A stream's events in flight also take slots of the tenant's
/// app channel, in the lines pushed deliveries use (one per topic, served in turn; see <see cref="AppChannel.Calls"/>),
/// so a tenant's streams, its pushed deliveries and the invocations into its app together hold at most its
/// <c>appChannel.maxConcurrency</c>, and none of them can take the slots the others are waiting for. A tenant without
/// an appEndpoint has no channel: its streams share a bound of the same size of their own. A tenant streams a topic
/// only where it may subscribe, and only once: not while another stream or a pushed subscription of its own delivers
/// that topic. When the stream closes, events not answered go back to the broker.
/// </summary>
internal sealed class StreamingSubscriptions(SubscriptionDelivery pushed, AppChannels channels, TimeProvider time, Metrics.RuntimeMetrics metrics,
    ILogger<StreamingSubscriptions> logger)
{
    /// <summary>Open streams per tenant.</summary>
    public const int MaxStreamsPerApp = 8;

    /// <summary>Events handed to one stream and not answered yet.</summary>
    public const int MaxInFlightPerStream = 32;

    private readonly Lock _openLock = new();
    private readonly Dictionary<string, TenantStreams> _open = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string AppId, string PubsubName, string Topic), byte> _topics = new();

    /// <summary>Streams open now for <paramref name="appId"/>, for tests.</summary>
    internal int OpenFor(string appId)
    {
        lock (_openLock)
        {
            return _open.TryGetValue(appId, out var streams) ? streams.Open : 0;
        }
    }

    /// <summary>
    /// Events of the streams of <paramref name="appId"/>, a tenant without an app channel, holding one of their shared
    /// slots and waiting for one; for tests.
    /// </summary>
    internal (int InFlight, int Queued) SlotsInUse(string appId)
    {
        FairQueue? slots;
        lock (_openLock)
        {
            slots = _open.TryGetValue(appId, out var streams) ? streams.Slots : null;
        }
        return slots is null
            ? (0, 0)
            : (slots.InFlight, _topics.Keys.Where(k => k.AppId == appId).Sum(k => slots.QueuedFor(AppChannel.DeliveryLine(k.PubsubName, k.Topic))));
    }

    /// <summary>
    /// Where a stream's events wait for a slot: the tenant's app channel when it has one (a reload may give it one, or
    /// replace it, while the stream is open), else the slots its streams share.
    /// </summary>
    private FairQueue SlotsFor(string appId, FairQueue own) => channels.Find(appId)?.Calls ?? own;

    /// <summary>
    /// Opens a stream of <paramref name="topic"/> of <paramref name="pubsubName"/> for the tenant, or throws the
    /// <see cref="DaprApiException"/> that refuses it. Dispose the result to close it.
    /// </summary>
    public async Task<StreamingSubscription> OpenAsync(TenantContext tenant, string pubsubName, string topic, string? deadLetterTopic,
        Func<StreamedEvent, CancellationToken, Task> send, CancellationToken cancellationToken)
    {
        var route = tenant.Routes.PubSub.Find(pubsubName)
            ?? throw new DaprApiException(404, "ERR_PUBSUB_NOT_FOUND", $"pubsub {pubsubName} not found");
        if (route.Instance is not IPubSubBroker broker)
        {
            throw new DaprApiException(500, "ERR_PUBSUB_NOT_FOUND", $"pubsub {pubsubName} is not available: {route.Component.Error}");
        }
        if (string.IsNullOrEmpty(topic))
        {
            throw new DaprApiException(400, "ERR_TOPIC_NAME_EMPTY", $"topic is empty in pubsub {pubsubName}");
        }
        if (TopicNames.Invalid(topic) is { } invalid)
        {
            throw invalid;
        }
        var rules = route.Topics!;
        if (!rules.MaySubscribe(tenant.Config.AppId, topic) || (deadLetterTopic is { Length: > 0 } && !rules.MayPublish(tenant.Config.AppId, deadLetterTopic)))
        {
            throw new DaprApiException(403, "ERR_PUBSUB_FORBIDDEN", $"topic {topic} is not allowed for app id {tenant.AppId}");
        }
        if (!rules.TryUse(broker, tenant.AppId, topic))
        {
            throw new DaprApiException(429, "ERR_TENANT_TOPICS_EXCEEDED", $"app {tenant.AppId} already uses {rules.MaxTopicsPerApp} topics of pubsub {pubsubName}, its limit (maxTopicsPerApp)");
        }
        var key = (tenant.AppId, pubsubName, topic);
        if (pushed.ActiveFor(tenant.AppId).Any(s => s.PubsubName == pubsubName && s.Topic == topic) || !_topics.TryAdd(key, 0))
        {
            throw new DaprApiException(400, "ERR_PUBSUB_SUBSCRIBE", $"app {tenant.AppId} already subscribes to topic {topic} of pubsub {pubsubName}");
        }
        if (Count(tenant.AppId, tenant.Config.AppChannel.MaxConcurrency) is not { } own)
        {
            _topics.TryRemove(key, out _);
            throw new DaprApiException(429, "ERR_TENANT_STREAMS_EXCEEDED", $"app {tenant.AppId} has {MaxStreamsPerApp} streaming subscriptions open, its limit");
        }
        var subscription = new StreamingSubscription(this, key, broker, deadLetterTopic, own, send);
        try
        {
            await subscription.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Close(key);
            throw;
        }
        DeliveryLog.Subscribed(logger, tenant.AppId, pubsubName, topic, "streaming subscription");
        return subscription;
    }

    /// <summary>Counts one more open stream of <paramref name="appId"/> and returns its streams' own slots; null at its limit.</summary>
    private FairQueue? Count(string appId, int maxConcurrency)
    {
        lock (_openLock)
        {
            if (!_open.TryGetValue(appId, out var streams))
            {
                streams = new TenantStreams(new FairQueue(maxConcurrency, maxQueuedPerTenant: 0));
                _open.Add(appId, streams);
            }
            if (streams.Open >= MaxStreamsPerApp)
            {
                return null;
            }
            streams.Open++;
            return streams.Slots;
        }
    }

    private void Close((string AppId, string PubsubName, string Topic) key)
    {
        _topics.TryRemove(key, out _);
        lock (_openLock)
        {
            // A tenant's own slots go with its last stream, whose events hold none any more.
            if (_open.TryGetValue(key.AppId, out var streams) && --streams.Open == 0)
            {
                _open.Remove(key.AppId);
            }
        }
    }

    /// <summary>A tenant's open streams, and the slots they share when the tenant has no app channel.</summary>
    private sealed class TenantStreams(FairQueue slots)
    {
        public FairQueue Slots { get; } = slots;

        public int Open { get; set; }
    }

    /// <summary>One open stream: events handed out and waiting for the app's answer.</summary>
    internal sealed class StreamingSubscription(StreamingSubscriptions owner, (string AppId, string PubsubName, string Topic) key, IPubSubBroker broker, string? deadLetterTopic,
        FairQueue ownSlots, Func<StreamedEvent, CancellationToken, Task> send) : IAsyncDisposable
    {
        /// <summary>The line its events wait in for a slot: the one a pushed subscription of the topic would use.</summary>
        private readonly string _line = AppChannel.DeliveryLine(key.PubsubName, key.Topic);
        private readonly ConcurrentDictionary<string, TaskCompletionSource<DeliveryOutcome>> _waiting = new(StringComparer.Ordinal);
        private readonly CompiledSubscription _compiled = new(new SubscriptionConfig
        {
            Name = $"{key.AppId}/{key.PubsubName}/{key.Topic}/stream",
            PubsubName = key.PubsubName,
            Topic = key.Topic,
            Routes = new SubscriptionRoutes([], "/"),
            DeadLetterTopic = deadLetterTopic,
            Scopes = [key.AppId],
            Source = "streaming subscription",
        });
        private IAsyncDisposable? _subscription;
        private int _closed;

        public async Task StartAsync(CancellationToken cancellationToken) =>
            _subscription = await broker.SubscribeAsync(key.Topic, key.AppId, MaxInFlightPerStream, HandleAsync, cancellationToken).ConfigureAwait(false);

        /// <summary>The app's answer for event <paramref name="id"/>; an id not waiting (unknown, answered already) is ignored.</summary>
        public void Answer(string id, DeliveryOutcome outcome)
        {
            if (_waiting.TryRemove(id, out var waiting))
            {
                waiting.TrySetResult(outcome);
            }
        }

        private async ValueTask<DeliveryOutcome> HandleAsync(ReceivedMessage message, CancellationToken cancellationToken)
        {
            var (outcome, label) = await DeliverAsync(message, cancellationToken).ConfigureAwait(false);
            owner.Metrics.Delivered(key.AppId, key.PubsubName, label);
            return outcome;
        }

        private async ValueTask<(DeliveryOutcome, string)> DeliverAsync(ReceivedMessage message, CancellationToken cancellationToken)
        {
            if (message.Undecodable is not null)
            {
                return await EndAsync(message, "poison_dropped", cancellationToken).ConfigureAwait(false);
            }
            var (content, _) = EventDelivery.Content.Of(message, _compiled, key.PubsubName);
            if (content is null || ToEvent(content.Body, message) is not { } streamed)
            {
                return await EndAsync(message, "poison_dropped", cancellationToken).ConfigureAwait(false);
            }
            if ((message.ExpiresAt ?? content.Expiration) is { } expiresAt && expiresAt <= owner.Time.GetUtcNow())
            {
                return (DeliveryOutcome.Drop, "expired");
            }
            // The event waits in its stream's line until the tenant has a slot free, and holds it until answered.
            var slots = owner.SlotsFor(key.AppId, ownSlots);
            try
            {
                await slots.EnterAsync(_line, int.MaxValue, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return (DeliveryOutcome.Retry, "retry"); // the stream closed while the event waited: the broker keeps it
            }
            var waiting = new TaskCompletionSource<DeliveryOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiting[streamed.Id] = waiting;
            try
            {
                await send(streamed, cancellationToken).ConfigureAwait(false);
                var outcome = await waiting.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
                return outcome switch
                {
                    DeliveryOutcome.Success => (DeliveryOutcome.Success, "success"),
                    DeliveryOutcome.Drop => await EndAsync(message, "dropped", cancellationToken).ConfigureAwait(false),
                    _ => message.Attempt >= broker.MaxDeliveryAttempts
                        ? await EndAsync(message, "attempts_exhausted", cancellationToken).ConfigureAwait(false)
                        : (DeliveryOutcome.Retry, "retry"),
                };
            }
            catch (Exception ex) when (ex is OperationCanceledException or InvalidOperationException or IOException)
            {
                return (DeliveryOutcome.Retry, "retry"); // the stream closed: the broker keeps the event
            }
            finally
            {
                _waiting.TryRemove(streamed.Id, out _);
                slots.Exit();
            }
        }

        /// <summary>The event ends: to the stream's dead-letter topic when it named one, else dropped.</summary>
        private async ValueTask<(DeliveryOutcome, string)> EndAsync(ReceivedMessage message, string label, CancellationToken cancellationToken)
        {
            if (deadLetterTopic is not { Length: > 0 } deadLetter)
            {
                return (DeliveryOutcome.Drop, label);
            }
            try
            {
                await broker.PublishAsync(new PubSubMessage(deadLetter, message.Data, message.ContentType, message.Metadata) { PublisherAppId = message.PublisherAppId }, cancellationToken)
                    .ConfigureAwait(false);
                return (DeliveryOutcome.Drop, "dead_lettered");
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                return (DeliveryOutcome.Retry, "retry");
            }
        }

        /// <summary>The CloudEvent's fields, its data as bytes (JSON as written, data_base64 decoded, a string as UTF-8); null when unreadable.</summary>
        private static StreamedEvent? ToEvent(ReadOnlyMemory<byte> cloudEvent, ReceivedMessage message)
        {
            using var document = JsonDocument.Parse(cloudEvent);
            var root = document.RootElement;
            string Text(string name, string fallback) => root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()! : fallback;
            ReadOnlyMemory<byte> data = Array.Empty<byte>();
            if (root.TryGetProperty("data_base64", out var base64) && base64.ValueKind == JsonValueKind.String)
            {
                if (!base64.TryGetBytesFromBase64(out var bytes))
                {
                    return null;
                }
                data = bytes;
            }
            else if (root.TryGetProperty("data", out var value))
            {
                data = value.ValueKind == JsonValueKind.String ? System.Text.Encoding.UTF8.GetBytes(value.GetString()!) : System.Text.Encoding.UTF8.GetBytes(value.GetRawText());
            }
            return new StreamedEvent(Guid.NewGuid().ToString(), Text("id", ""), Text("source", ""), Text("type", ""), Text("specversion", "1.0"),
                Text("datacontenttype", "application/json"), data, message.Topic, Text("pubsubname", ""));
        }

        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _closed, 1) == 1)
            {
                return;
            }
            if (_subscription is not null)
            {
                await _subscription.DisposeAsync().ConfigureAwait(false);
            }
            owner.Close(key);
            DeliveryLog.Unsubscribed(owner.Logger, key.AppId, key.PubsubName, key.Topic);
        }
    }

    private TimeProvider Time => time;

    private Metrics.RuntimeMetrics Metrics => metrics;

    private ILogger Logger => logger;
}
