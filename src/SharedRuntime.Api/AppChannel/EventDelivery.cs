using System.Buffers;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Timeout;
using SharedRuntime.Components;

namespace SharedRuntime.AppChannel;

/// <summary>
/// Delivers one event to a subscriber app and turns its answer into what the broker does with the event, as Dapr
/// does: 2xx with status SUCCESS (or no status) acknowledges; DROP drops (to the dead-letter topic when set); 404
/// drops; RETRY, an unknown status, any other code or no answer fails the attempt, which the tenant's Resiliency
/// policy may retry; when it gives up the event goes to the dead-letter topic, or stays in the broker. A delivery
/// waits for a free slot of the app; an app whose circuit is open is not called: the event goes back to the broker.
/// Every event ends: one that can never be delivered (the broker cannot read it, its content type is not a media
/// type, a CloudEvent that is not a JSON object) ends at once, and one still failing on the broker's last delivery
/// attempt (<see cref="IPubSubBroker.MaxDeliveryAttempts"/>) ends then: in the dead-letter topic when the subscription
/// has one, else dropped with a log line and the <c>sharedruntime_deliveries_total</c> outcome <c>poison_dropped</c>
/// or <c>attempts_exhausted</c>. A message past its expiry (publish metadata <c>ttlInSeconds</c>, carried by the broker or
/// as the CloudEvent's <c>expiration</c>) is dropped without calling the app (outcome <c>expired</c>). The app learns who published the event from the runtime only: the
/// <c>dapr-publisher-app-id</c> header and the CloudEvent's <c>publisherappid</c> attribute carry the publisher the
/// broker carried, whatever the event says.
/// </summary>
internal sealed partial class EventDelivery(AppChannels channels, ResiliencyPolicies policies, Metrics.RuntimeMetrics metrics, TimeProvider time, ILogger logger,
    Diagnostics.RuntimeTracing? tracing = null)
{
    /// <summary>The header that names the app that published a delivered event; only the runtime sets it.</summary>
    public const string PublisherHeader = "dapr-publisher-app-id";

    private const int MaxAnswerBytes = 64 * 1024;
    private const int MaxPublisherLength = 256;

    public async ValueTask<DeliveryOutcome> DeliverCountedAsync(SubscriptionDelivery.ActiveSubscription subscription, ReceivedMessage message, CancellationToken cancellationToken)
    {
        var (outcome, label) = await DeliverAsync(subscription, message, cancellationToken).ConfigureAwait(false);
        metrics.Delivered(subscription.AppId, subscription.PubsubName, label);
        return outcome;
    }

    private static readonly (DeliveryOutcome, string) Retry = (DeliveryOutcome.Retry, "retry");
    private static readonly (DeliveryOutcome, string) Dropped = (DeliveryOutcome.Drop, "dropped");
    private static readonly (DeliveryOutcome, string) Expired = (DeliveryOutcome.Drop, "expired");

    /// <summary>One delivery attempt; never throws but for a cancelled <paramref name="cancellationToken"/>, which answers Retry.</summary>
    public async ValueTask<(DeliveryOutcome Outcome, string Label)> DeliverAsync(SubscriptionDelivery.ActiveSubscription subscription, ReceivedMessage message, CancellationToken cancellationToken)
    {
        try
        {
            return await DeliverOnceAsync(subscription, message, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return Retry;
        }
        catch (Exception ex)
        {
            DeliveryLog.Failed(logger, subscription.AppId, message.Topic, message.Attempt, ex.Message);
            return await FailedAsync(subscription, message, ex.Message, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// What is sent to the app for <paramref name="message"/>, or null with how the event ended without reaching the app:
    /// no channel, an entry the broker cannot read or an event that is not a CloudEvent (poison), expired, no route.
    /// </summary>
    private async ValueTask<(Content? Content, (DeliveryOutcome, string) Ended)> PrepareAsync(SubscriptionDelivery.ActiveSubscription subscription, ReceivedMessage message,
        CancellationToken cancellationToken)
    {
        if (channels.Find(subscription.AppId) is null)
        {
            return (null, await FailedAsync(subscription, message, "the app has no channel", cancellationToken, deadLetter: false).ConfigureAwait(false));
        }
        if (message.Undecodable is { } undecodable)
        {
            return (null, await EndAsync(subscription, message, $"the broker's entry cannot be read: {undecodable}", "poison_dropped", cancellationToken).ConfigureAwait(false));
        }
        var (content, problem) = Content.Of(message, subscription.Compiled, subscription.PubsubName);
        if (content is null)
        {
            return (null, await EndAsync(subscription, message, problem!, "poison_dropped", cancellationToken).ConfigureAwait(false));
        }
        if ((message.ExpiresAt ?? content.Expiration) is { } expiresAt && expiresAt <= time.GetUtcNow())
        {
            // ttlInSeconds: an expired message is dropped, as Dapr drops it, without reaching the app.
            DeliveryLog.Expired(logger, subscription.AppId, message.Topic, subscription.PubsubName);
            return (null, Expired);
        }
        if (content.Path is null)
        {
            DeliveryLog.NoRoute(logger, subscription.AppId, message.Topic);
            return (null, Dropped);
        }
        return (content, default);
    }

    private async ValueTask<(DeliveryOutcome Outcome, string Label)> DeliverOnceAsync(SubscriptionDelivery.ActiveSubscription subscription, ReceivedMessage message, CancellationToken cancellationToken)
    {
        var (content, ended) = await PrepareAsync(subscription, message, cancellationToken).ConfigureAwait(false);
        if (content is null)
        {
            return ended;
        }
        var channel = channels.Find(subscription.AppId);
        if (channel is null)
        {
            return await FailedAsync(subscription, message, "the app has no channel", cancellationToken, deadLetter: false).ConfigureAwait(false);
        }
        // Deliveries wait for a slot: their number is bounded by the broker's in-flight limit, and an event waiting
        // here costs nothing, where handing it back to the broker would have it delivered again and again.
        try
        {
            await channel.Calls.EnterAsync(subscription.DeliveryLine, int.MaxValue, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return Retry;
        }
        AppCallResult? result = null;
        try
        {
            var pipeline = policies.ForInbound(subscription.AppId, subscription.PubsubName);
            var publisher = PublisherOf(message);
            using var span = tracing?.StartDelivery(subscription.AppId, subscription.PubsubName, message.Topic, content.TraceParent, null);
            result = await pipeline.ExecuteAsync(
                static async (state, token) =>
                {
                    var (channel, content, publisher, traceParent, pubsubName, topic) = state;
                    if (channel.Protocol == Configuration.AppProtocol.Grpc)
                    {
                        return await channel.SendAsync(TopicEventRequest(channel, content, pubsubName, topic, publisher, traceParent), ClassifyTopicEventAsync, token)
                            .ConfigureAwait(false);
                    }
                    var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"{channel.Endpoint.OriginalString}/{content.Path!.TrimStart('/')}", UriKind.Absolute))
                    {
                        Content = new ReadOnlyMemoryContent(content.Body),
                    };
                    request.Content.Headers.ContentType = content.ContentType;
                    if (traceParent is not null)
                    {
                        request.Headers.TryAddWithoutValidation("traceparent", traceParent);
                    }
                    if (publisher is not null)
                    {
                        request.Headers.TryAddWithoutValidation(PublisherHeader, publisher);
                    }
                    if (channel.Config.AppApiToken is { } appToken)
                    {
                        request.Headers.TryAddWithoutValidation("dapr-api-token", appToken);
                    }
                    return await channel.SendAsync(request, EventDelivery.ClassifyAsync, token).ConfigureAwait(false);
                },
                (channel, content, publisher, span?.Id ?? content.TraceParent, subscription.PubsubName, message.Topic),
                cancellationToken).ConfigureAwait(false);

            if (!result.Failed)
            {
                if (result.Delivery == DeliveryOutcome.Drop && result.StatusCode != 404)
                {
                    DeliveryLog.Dropped(logger, subscription.AppId, message.Topic, result.StatusCode);
                    return subscription.Config.DeadLetterTopic is { Length: > 0 }
                        ? await EndAsync(subscription, message, "the app dropped it", "dropped", cancellationToken).ConfigureAwait(false)
                        : Dropped;
                }
                return result.Delivery == DeliveryOutcome.Success ? (DeliveryOutcome.Success, "success") : Dropped;
            }
            var failure = result.Problem ?? $"status {result.StatusCode}";
            DeliveryLog.Failed(logger, subscription.AppId, message.Topic, message.Attempt, failure);
            return await FailedAsync(subscription, message, failure, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is CircuitOpenException)
        {
            return await FailedAsync(subscription, message, "the app's circuit is open", cancellationToken, deadLetter: false).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or TimeoutRejectedException or HttpRequestException)
        {
            DeliveryLog.Failed(logger, subscription.AppId, message.Topic, message.Attempt, ex.Message);
            return await FailedAsync(subscription, message, ex.Message, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            result?.Dispose();
            channel.Calls.Exit();
        }
    }

    /// <summary>
    /// An attempt failed: to the dead-letter topic when the subscription has one (and <paramref name="deadLetter"/>),
    /// else back to the broker for another attempt, unless this was the broker's last.
    /// </summary>
    private async ValueTask<(DeliveryOutcome, string)> FailedAsync(SubscriptionDelivery.ActiveSubscription subscription, ReceivedMessage message, string problem,
        CancellationToken cancellationToken, bool deadLetter = true)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Retry; // the subscription stops: the broker keeps the event
        }
        if (deadLetter && subscription.Config.DeadLetterTopic is { Length: > 0 })
        {
            return await EndAsync(subscription, message, problem, "dead_lettered", cancellationToken).ConfigureAwait(false);
        }
        if (message.Attempt >= subscription.Broker.MaxDeliveryAttempts)
        {
            return await EndAsync(subscription, message, $"still failing after {message.Attempt} delivery attempts, the bound: {problem}", "attempts_exhausted", cancellationToken).ConfigureAwait(false);
        }
        return Retry;
    }

    /// <summary>
    /// The event ends here: sent to the subscription's dead-letter topic and acknowledged, or without one dropped with a
    /// log line (counted as <paramref name="label"/>). When sending to the dead-letter topic fails it stays in the
    /// broker, until the broker's last attempt, which drops it.
    /// </summary>
    private async ValueTask<(DeliveryOutcome, string)> EndAsync(SubscriptionDelivery.ActiveSubscription subscription, ReceivedMessage message, string reason, string label,
        CancellationToken cancellationToken)
    {
        if (subscription.Config.DeadLetterTopic is not { Length: > 0 } deadLetter)
        {
            DeliveryLog.Ended(logger, subscription.AppId, message.Topic, subscription.PubsubName, reason);
            return (DeliveryOutcome.Drop, label);
        }
        try
        {
            await subscription.Broker.PublishAsync(new PubSubMessage(deadLetter, message.Data, message.ContentType, message.Metadata) { PublisherAppId = message.PublisherAppId },
                cancellationToken).ConfigureAwait(false);
            DeliveryLog.DeadLettered(logger, subscription.AppId, message.Topic, deadLetter);
            return (DeliveryOutcome.Drop, "dead_lettered");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            DeliveryLog.DeadLetterFailed(logger, subscription.AppId, message.Topic, deadLetter, ex.Message);
            if (message.Attempt >= subscription.Broker.MaxDeliveryAttempts)
            {
                DeliveryLog.Ended(logger, subscription.AppId, message.Topic, subscription.PubsubName, $"{reason}; the dead-letter topic refused it on the last delivery attempt");
                return (DeliveryOutcome.Drop, "attempts_exhausted");
            }
            return Retry;
        }
    }

    /// <summary>The publisher the broker carried, when it can travel in a header.</summary>
    private static string? PublisherOf(ReceivedMessage message) =>
        message.PublisherAppId is { Length: > 0 and <= MaxPublisherLength } publisher && publisher.All(static c => c is > ' ' and < (char)127) ? publisher : null;

    /// <summary>
    /// Dapr's rule for an answer's status, the same for single and bulk deliveries: 404 drops, another status outside
    /// 2xx fails the attempt; null for a 2xx, whose body decides.
    /// </summary>
    private static AppCallResult? StatusVerdict(HttpResponseMessage response)
    {
        var status = (int)response.StatusCode;
        if (status == 404)
        {
            return new AppCallResult { StatusCode = status, Delivery = DeliveryOutcome.Drop };
        }
        if (status is < 200 or > 299)
        {
            return new AppCallResult { StatusCode = status, Failed = true, Delivery = DeliveryOutcome.Retry, Problem = $"the app answered {status}" };
        }
        return null;
    }

    internal static async ValueTask<AppCallResult> ClassifyAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        using (response)
        {
            if (StatusVerdict(response) is { } byStatus)
            {
                return byStatus;
            }
            var status = (int)response.StatusCode;
            var answer = await ReadBoundedAsync(response.Content, MaxAnswerBytes, cancellationToken).ConfigureAwait(false);
            string? verdict;
            try
            {
                using var document = JsonDocument.Parse(answer);
                verdict = document.RootElement.ValueKind == JsonValueKind.Object ? StatusOf(document.RootElement) : null;
            }
            catch (JsonException)
            {
                verdict = null; // Not JSON: Dapr takes it as success.
            }
            return verdict?.ToUpperInvariant() switch
            {
                null or "" or "SUCCESS" => new AppCallResult { StatusCode = status, Delivery = DeliveryOutcome.Success },
                "DROP" => new AppCallResult { StatusCode = status, Delivery = DeliveryOutcome.Drop },
                "RETRY" => new AppCallResult { StatusCode = status, Failed = true, Delivery = DeliveryOutcome.Retry, Problem = "the app answered RETRY" },
                var other => new AppCallResult { StatusCode = status, Failed = true, Delivery = DeliveryOutcome.Retry, Problem = $"the app answered an unknown status '{other}'" },
            };
        }
    }

    private static string? StatusOf(JsonElement answer)
    {
        foreach (var property in answer.EnumerateObject())
        {
            if (property.Name.Equals("status", StringComparison.OrdinalIgnoreCase))
            {
                return property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString() : property.Value.ToString();
            }
        }
        return null;
    }

    /// <summary>The answer's first <paramref name="max"/> bytes at most; the rest is not read.</summary>
    private static async Task<byte[]> ReadBoundedAsync(HttpContent content, int max, CancellationToken cancellationToken)
    {
        await using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = new byte[Math.Min(max, 16 * 1024)];
        var total = 0;
        int read;
        while ((read = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false)) > 0)
        {
            total += read;
            if (total == buffer.Length)
            {
                if (buffer.Length == max)
                {
                    break;
                }
                Array.Resize(ref buffer, Math.Min(max, buffer.Length * 2));
            }
        }
        return buffer[..total];
    }

    /// <summary>What is sent to the app for one event: body, content type, route, trace parent, and when it expires.</summary>
    internal sealed record Content(ReadOnlyMemory<byte> Body, MediaTypeHeaderValue ContentType, string? Path, string? TraceParent, DateTimeOffset? Expiration = null)
    {
        private static readonly MediaTypeHeaderValue CloudEventType = new("application/cloudevents+json");

        /// <summary>
        /// A CloudEvent as published, its <c>publisherappid</c> set to the publisher the broker carried (removed when it
        /// carried none). A subscription marked <c>rawPayload: "true"</c> gets whatever the broker holds wrapped in a
        /// CloudEvent, as Dapr does (<see cref="Wrap"/>), and so does any subscription for a message published raw.
        /// Null with the reason when the event can never be delivered.
        /// </summary>
        public static (Content? Content, string? Problem) Of(ReceivedMessage message, CompiledSubscription subscription, string pubsubName)
        {
            var isCloudEvent = !subscription.IsRaw && message.ContentType.StartsWith("application/cloudevents+json", StringComparison.OrdinalIgnoreCase);
            var body = isCloudEvent ? message.Data : Wrap(message, pubsubName);
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(body);
            }
            catch (JsonException ex)
            {
                return (null, $"it is not a JSON CloudEvent: {ex.Message}");
            }
            using (document)
            {
                var root = document.RootElement;
                if (root.ValueKind != JsonValueKind.Object)
                {
                    return (null, "it is not a JSON CloudEvent: not a JSON object");
                }
                var hasTrace = root.TryGetProperty("traceparent", out var trace);
                var traceParent = hasTrace && trace.ValueKind == JsonValueKind.String && BuildingBlocks.TraceParent.IsValid(trace.GetString()!)
                    ? trace.GetString()!
                    : BuildingBlocks.TraceParent.New();
                var path = subscription.RouteOf(root);
                DateTimeOffset? expiration = null;
                if (isCloudEvent && root.TryGetProperty(BuildingBlocks.PublishApi.ExpirationAttribute, out var expires) && expires.ValueKind == JsonValueKind.String &&
                    DateTimeOffset.TryParse(expires.GetString(), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var at))
                {
                    expiration = at;
                }
                if (isCloudEvent && (!NamesPublisher(root, message.PublisherAppId) || (hasTrace && traceParent != trace.GetString())))
                {
                    body = Rewrite(root, message.PublisherAppId, traceParent);
                }
                return (new Content(body, CloudEventType, path, traceParent, expiration), null);
            }
        }

        private static bool NamesPublisher(JsonElement root, string? publisher)
        {
            string? named = null;
            var count = 0;
            foreach (var property in root.EnumerateObject())
            {
                if (property.NameEquals(BuildingBlocks.PublishApi.PublisherAttribute))
                {
                    count++;
                    named = property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString() : "";
                }
            }
            return publisher is null ? count == 0 : count == 1 && named == publisher;
        }

        /// <summary>
        /// The CloudEvent with <c>publisherappid</c> set by the runtime (every copy the event had is left out) and a
        /// trace parent that is not a valid W3C one replaced by <paramref name="traceParent"/>.
        /// </summary>
        private static ReadOnlyMemory<byte> Rewrite(JsonElement root, string? publisher, string traceParent)
        {
            var buffer = new ArrayBufferWriter<byte>(256);
            using (var writer = new Utf8JsonWriter(buffer))
            {
                writer.WriteStartObject();
                foreach (var property in root.EnumerateObject())
                {
                    if (property.NameEquals(BuildingBlocks.PublishApi.PublisherAttribute))
                    {
                        continue;
                    }
                    if ((property.NameEquals("traceparent") || property.NameEquals("traceid")) &&
                        !(property.Value.ValueKind == JsonValueKind.String && BuildingBlocks.TraceParent.IsValid(property.Value.GetString()!)))
                    {
                        writer.WriteString(property.Name, traceParent);
                        continue;
                    }
                    property.WriteTo(writer);
                }
                if (publisher is not null)
                {
                    writer.WriteString(BuildingBlocks.PublishApi.PublisherAttribute, publisher);
                }
                writer.WriteEndObject();
            }
            return buffer.WrittenMemory;
        }

        /// <summary>
        /// A message that is not a CloudEvent (or one for a raw subscription), wrapped in one as Dapr does for a raw
        /// payload: a new id, type <c>com.dapr.event.sent</c>, the topic and pubsub; the publisher the broker carried as
        /// source and <c>publisherappid</c>. A JSON message goes in <c>data</c> with its content type; anything else in
        /// <c>data_base64</c>, with its content type when that is a media type, else <c>application/octet-stream</c>.
        /// </summary>
        internal static ReadOnlyMemory<byte> Wrap(ReceivedMessage message, string pubsubName)
        {
            var buffer = new ArrayBufferWriter<byte>(message.Data.Length * 4 / 3 + 256);
            using (var writer = new Utf8JsonWriter(buffer))
            {
                var json = BuildingBlocks.PublishApi.IsJson(message.ContentType) && BuildingBlocks.PublishApi.IsValidJson(message.Data.Span);
                var contentType = message.ContentType.Length is > 0 and <= 256 && MediaTypeHeaderValue.TryParse(message.ContentType, out _)
                    ? message.ContentType
                    : "application/octet-stream";
                writer.WriteStartObject();
                writer.WriteString("id", Guid.NewGuid().ToString());
                writer.WriteString("source", message.PublisherAppId ?? "Dapr");
                writer.WriteString("type", "com.dapr.event.sent");
                writer.WriteString("specversion", "1.0");
                writer.WriteString("datacontenttype", contentType);
                writer.WriteString("topic", message.Topic);
                writer.WriteString("pubsubname", pubsubName);
                if (message.PublisherAppId is { } publisher)
                {
                    writer.WriteString(BuildingBlocks.PublishApi.PublisherAttribute, publisher);
                }
                if (json)
                {
                    writer.WritePropertyName("data");
                    writer.WriteRawValue(message.Data.Span, skipInputValidation: true);
                }
                else
                {
                    writer.WriteBase64String("data_base64", message.Data.Span);
                }
                writer.WriteEndObject();
            }
            return buffer.WrittenMemory;
        }

        private static string Shorten(string text) => text.Length <= 64 ? text : text[..64] + "...";
    }
}
