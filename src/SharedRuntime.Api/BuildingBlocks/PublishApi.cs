using System.Collections.ObjectModel;
using System.Buffers;
using System.Text;
using System.Text.Json;
using SharedRuntime.Components;
using SharedRuntime.Routing;
using SharedRuntime.Tenancy;

namespace SharedRuntime.BuildingBlocks;

/// <summary>A message an app publishes: payload, its content type, metadata, and the caller's trace context.</summary>
internal sealed record PublishRequest(string PubSubName, string Topic, ReadOnlyMemory<byte> Data, string? ContentType, IReadOnlyDictionary<string, string> Metadata, string? TraceParent = null, string? TraceState = null);

/// <summary>One entry of a bulk publish, as the app sent it over either transport.</summary>
internal sealed record BulkPublishEntry(string EntryId, ReadOnlyMemory<byte> Data, string? ContentType, IReadOnlyDictionary<string, string>? Metadata);

/// <summary>
/// The publish building block shared by HTTP and gRPC: scopes, topic rules and bounds, and the CloudEvent envelope as
/// Dapr builds it. The message names its real publisher for the broker to carry (<see cref="PubSubMessage.PublisherAppId"/>),
/// and a CloudEvent always carries it in <see cref="PublisherAttribute"/>, whatever the publisher sent.
/// </summary>
internal sealed class PublishApi(TimeProvider time)
{
    /// <summary>The CloudEvent extension attribute that names the app that published the event; only the runtime sets it.</summary>
    public const string PublisherAttribute = "publisherappid";

    /// <summary>The CloudEvent attribute Dapr writes a message's expiry in (RFC 3339), from publish metadata <c>ttlInSeconds</c>.</summary>
    public const string ExpirationAttribute = "expiration";

    private const int MaxContentTypeLength = 256;

    /// <summary>The tenant's route to pub/sub <paramref name="pubsubName"/>, with its broker.</summary>
    private static (ComponentRoute Route, IPubSubBroker Broker) GetBroker(TenantContext tenant, string pubsubName)
    {
        var pubsubs = tenant.Routes.PubSub;
        if (pubsubs.IsEmpty)
        {
            throw new DaprApiException(400, "ERR_PUBSUB_NOT_CONFIGURED", "no pubsub is configured");
        }
        if (string.IsNullOrEmpty(pubsubName))
        {
            throw new DaprApiException(404, "ERR_PUBSUB_EMPTY", "pubsub name is empty");
        }
        var route = pubsubs.Find(pubsubName)
            ?? throw new DaprApiException(404, "ERR_PUBSUB_NOT_FOUND", $"pubsub {pubsubName} not found");
        if (route.Instance is not IPubSubBroker broker)
        {
            throw new DaprApiException(500, "ERR_PUBSUB_NOT_FOUND", $"pubsub {pubsubName} is not available: {route.Component.Error}");
        }
        return (route, broker);
    }

    /// <summary>
    /// Publishes each entry of a bulk publish in order, with the request's metadata under each entry's own, and returns
    /// the entries the broker refused (entry id and error); a refusal of the request itself (an unknown pubsub, a topic
    /// the tenant may not publish to, a tenant limit) fails the whole call. Every entry needs an id unique in the
    /// request, checked before anything is published.
    /// </summary>
    public async ValueTask<IReadOnlyList<(string EntryId, string Error)>> BulkPublishAsync(TenantContext tenant, string pubsubName, string topic,
        IReadOnlyList<BulkPublishEntry> entries, IReadOnlyDictionary<string, string> metadata, CancellationToken cancellationToken)
    {
        var seen = new HashSet<string>(entries.Count, StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            if (string.IsNullOrEmpty(entry.EntryId) || !seen.Add(entry.EntryId))
            {
                throw Errors.Malformed("every entry needs a unique entryId");
            }
        }
        var failed = new List<(string EntryId, string Error)>();
        foreach (var entry in entries)
        {
            var entryMetadata = new Dictionary<string, string>(metadata, StringComparer.Ordinal);
            foreach (var (key, value) in entry.Metadata ?? ReadOnlyDictionary<string, string>.Empty)
            {
                entryMetadata[key] = value;
            }
            try
            {
                await PublishAsync(tenant, new PublishRequest(pubsubName, topic, entry.Data, entry.ContentType, entryMetadata), cancellationToken).ConfigureAwait(false);
            }
            catch (DaprApiException ex) when (ex.ErrorCode == "ERR_PUBSUB_PUBLISH_MESSAGE")
            {
                failed.Add((entry.EntryId, ex.Message));
            }
        }
        return failed;
    }

    public async ValueTask PublishAsync(TenantContext tenant, PublishRequest request, CancellationToken cancellationToken)
    {
        var message = Prepare(tenant, request, out var route, out var broker);
        try
        {
            await route.RunAsync((broker, message), static async (state, token) =>
            {
                await state.broker.PublishAsync(state.message, token).ConfigureAwait(false);
                return true;
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (PubSubMessageRejectedException ex)
        {
            // The server refused this message (a key of another type under the topic's name, too large): the publisher's error.
            throw new DaprApiException(400, "ERR_PUBSUB_PUBLISH_MESSAGE", $"error when publish to topic {request.Topic} in pubsub {request.PubSubName}: {ex.Message}", ex);
        }
        catch (PubSubLimitException ex)
        {
            throw ex.Limit == PubSubLimit.QueueFull
                ? new DaprApiException(429, "ERR_TENANT_PUBSUB_QUEUE_FULL", $"error when publish to topic {request.Topic} in pubsub {request.PubSubName}: {ex.Message}", ex) { RetryAfterSeconds = 1 }
                : new DaprApiException(429, "ERR_TENANT_TOPICS_EXCEEDED", $"error when publish to topic {request.Topic} in pubsub {request.PubSubName}: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is not DaprApiException and not OperationCanceledException)
        {
            throw new DaprApiException(500, "ERR_PUBSUB_PUBLISH_MESSAGE", $"error when publish to topic {request.Topic} in pubsub {request.PubSubName}: {ex.Message}", ex);
        }
    }

    /// <summary>Checks the request and builds the message to hand to the broker.</summary>
    private PubSubMessage Prepare(TenantContext tenant, PublishRequest request, out ComponentRoute route, out IPubSubBroker broker)
    {
        (route, broker) = GetBroker(tenant, request.PubSubName);
        if (string.IsNullOrEmpty(request.Topic))
        {
            throw new DaprApiException(404, "ERR_TOPIC_NAME_EMPTY", $"topic is empty in pubsub {request.PubSubName}");
        }
        if (TopicNames.Invalid(request.Topic) is { } invalid)
        {
            throw invalid;
        }
        var rules = route.Topics!;
        if (!rules.MayPublish(tenant.Config.AppId, request.Topic))
        {
            throw new DaprApiException(403, "ERR_PUBSUB_FORBIDDEN", $"topic {request.Topic} is not allowed for app id {tenant.AppId}");
        }
        if (!rules.TryUse(broker, tenant.AppId, request.Topic))
        {
            throw new DaprApiException(429, "ERR_TENANT_TOPICS_EXCEEDED",
                $"app {tenant.AppId} already uses {rules.MaxTopicsPerApp} topics of pubsub {request.PubSubName}, its limit (maxTopicsPerApp)");
        }
        var expiresAt = ExpiresAt(request);
        if (IsRaw(request.Metadata))
        {
            var contentType = request.ContentType ?? "application/octet-stream";
            if (contentType.Length > MaxContentTypeLength || !System.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out _))
            {
                // A raw event is delivered with this content type as its header: one that is not a media type could never be delivered.
                throw new DaprApiException(400, "ERR_MALFORMED_REQUEST", $"the content type of a raw event must be a media type of at most {MaxContentTypeLength} characters");
            }
            return new PubSubMessage(request.Topic, request.Data, contentType, request.Metadata) { PublisherAppId = tenant.Config.AppId, ExpiresAt = expiresAt };
        }
        var envelope = BuildCloudEvent(tenant.Config.AppId, request, expiresAt);
        return new PubSubMessage(request.Topic, envelope, "application/cloudevents+json", request.Metadata) { PublisherAppId = tenant.Config.AppId, ExpiresAt = expiresAt };
    }

    /// <summary>The longest <c>ttlInSeconds</c> a message may have: a year.</summary>
    public const long MaxTtlSeconds = 365L * 24 * 3600;

    /// <summary>Publish metadata <c>rawPayload</c> (Dapr's; any case of the name).</summary>
    internal static bool IsRaw(IReadOnlyDictionary<string, string> metadata) =>
        Metadata(metadata, "rawPayload") is { } raw && bool.TryParse(raw, out var value) && value;

    /// <summary>A metadata value whose name is <paramref name="name"/> in any case, as Dapr reads its publish metadata.</summary>
    internal static string? Metadata(IReadOnlyDictionary<string, string> metadata, string name)
    {
        if (metadata.TryGetValue(name, out var value))
        {
            return value;
        }
        foreach (var (key, entry) in metadata)
        {
            if (key.Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return entry;
            }
        }
        return null;
    }

    /// <summary>
    /// When a message with publish metadata <c>ttlInSeconds</c> expires: null without it; a value that is not a whole
    /// number of seconds from 1 to <see cref="MaxTtlSeconds"/> is the publisher's 400.
    /// </summary>
    private DateTimeOffset? ExpiresAt(PublishRequest request)
    {
        if (Metadata(request.Metadata, "ttlInSeconds") is not { } text)
        {
            return null;
        }
        if (!long.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var seconds) || seconds is < 1 or > MaxTtlSeconds)
        {
            throw new DaprApiException(400, "ERR_PUBSUB_REQUEST_METADATA",
                $"metadata ttlInSeconds of the publish to topic {request.Topic} must be a whole number of seconds from 1 to {MaxTtlSeconds}, not '{Shorten(text)}'");
        }
        return time.GetUtcNow().AddSeconds(seconds);
    }

    private static string Shorten(string text) => text.Length <= 64 ? text : text[..64] + "...";

    /// <summary>
    /// The CloudEvent Dapr wraps a payload in: id, source (the publishing app-id), type, specversion,
    /// datacontenttype, topic, pubsubname, trace fields, time; data as JSON for JSON payloads, data_base64 for binary,
    /// else a string. A payload that is already a CloudEvent keeps its fields; missing ones are filled in. Either way
    /// <see cref="PublisherAttribute"/> names the publishing app, and a trace parent that is not a valid W3C
    /// <c>traceparent</c> is replaced by a new one.
    /// </summary>
    internal byte[] BuildCloudEvent(string appId, PublishRequest request, DateTimeOffset? expiresAt = null)
    {
        var contentType = string.IsNullOrEmpty(request.ContentType) ? "text/plain" : request.ContentType;
        var buffer = new ArrayBufferWriter<byte>(request.Data.Length + 512);
        using var writer = new Utf8JsonWriter(buffer);
        var now = Timestamp(time.GetUtcNow());
        // The publishing call's span when it is traced, so a delivery's span is its child.
        var traceParent = Diagnostics.RuntimeTracing.CurrentTraceParent()
            ?? (request.TraceParent is { } given && TraceParent.IsValid(given) ? given : TraceParent.New());

        if (contentType.StartsWith("application/cloudevents+json", StringComparison.OrdinalIgnoreCase))
        {
            JsonDocument existing;
            try
            {
                existing = JsonDocument.Parse(request.Data);
            }
            catch (JsonException ex)
            {
                throw new DaprApiException(400, "ERR_PUBSUB_CLOUD_EVENTS_SER", $"the payload is not a valid CloudEvent: {ex.Message}", ex);
            }
            using (existing)
            {
                if (existing.RootElement.ValueKind != JsonValueKind.Object)
                {
                    throw new DaprApiException(400, "ERR_PUBSUB_CLOUD_EVENTS_SER", "the payload is not a valid CloudEvent: not a JSON object");
                }
                writer.WriteStartObject();
                var present = new HashSet<string>(StringComparer.Ordinal);
                foreach (var property in existing.RootElement.EnumerateObject())
                {
                    if (property.NameEquals(PublisherAttribute) || (expiresAt is not null && property.NameEquals(ExpirationAttribute)) || !present.Add(property.Name))
                    {
                        continue; // set below, by the runtime; a repeated name would let a reader pick either copy
                    }
                    if ((property.NameEquals("traceparent") || property.NameEquals("traceid")) &&
                        !(property.Value.ValueKind == JsonValueKind.String && TraceParent.IsValid(property.Value.GetString()!)))
                    {
                        writer.WriteString(property.Name, traceParent);
                        continue;
                    }
                    property.WriteTo(writer);
                }
                writer.WriteString(PublisherAttribute, appId);
                if (expiresAt is { } expires)
                {
                    writer.WriteString(ExpirationAttribute, Timestamp(expires));
                }
                void Fill(string name, string value)
                {
                    if (!present.Contains(name))
                    {
                        writer.WriteString(name, value);
                    }
                }
                Fill("id", Guid.NewGuid().ToString());
                Fill("source", appId);
                Fill("type", "com.dapr.event.sent");
                Fill("specversion", "1.0");
                Fill("datacontenttype", "application/json");
                Fill("topic", request.Topic);
                Fill("pubsubname", request.PubSubName);
                Fill("traceid", traceParent);
                Fill("traceparent", traceParent);
                Fill("tracestate", request.TraceState ?? "");
                Fill("time", now);
                writer.WriteEndObject();
            }
        }
        else
        {
            // Publish metadata cloudevent.* overrides the envelope's attributes, as in Dapr (names in any case); a trace
            // parent that is not valid W3C syntax is not taken.
            string? Override(string name) => Metadata(request.Metadata, "cloudevent." + name) is { Length: > 0 } value ? value : null;
            var traceId = Override("traceid") is { } id && TraceParent.IsValid(id) ? id : null;
            traceParent = Override("traceparent") is { } parent && TraceParent.IsValid(parent) ? parent : traceId ?? traceParent;
            writer.WriteStartObject();
            writer.WriteString("id", Override("id") ?? Guid.NewGuid().ToString());
            writer.WriteString("source", Override("source") ?? appId);
            writer.WriteString("type", Override("type") ?? "com.dapr.event.sent");
            writer.WriteString("specversion", "1.0");
            writer.WriteString("datacontenttype", contentType);
            writer.WriteString("topic", request.Topic);
            writer.WriteString("pubsubname", request.PubSubName);
            writer.WriteString("traceid", traceId ?? traceParent);
            writer.WriteString("traceparent", traceParent);
            writer.WriteString("tracestate", Override("tracestate") ?? request.TraceState ?? "");
            writer.WriteString("time", now);
            writer.WriteString(PublisherAttribute, appId);
            if (expiresAt is { } expires)
            {
                writer.WriteString(ExpirationAttribute, Timestamp(expires));
            }
            if (IsJson(contentType) && IsValidJson(request.Data.Span))
            {
                writer.WritePropertyName("data");
                writer.WriteRawValue(request.Data.Span, skipInputValidation: true);
            }
            else if (IsBinary(contentType))
            {
                writer.WriteBase64String("data_base64", request.Data.Span);
            }
            else
            {
                writer.WriteString("data", Encoding.UTF8.GetString(request.Data.Span));
            }
            writer.WriteEndObject();
        }
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>RFC 3339 in UTC with fractions of a second, as CloudEvent times are written.</summary>
    internal static string Timestamp(DateTimeOffset at) =>
        at.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", System.Globalization.CultureInfo.InvariantCulture);

    internal static bool IsJson(string contentType) =>
        contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) ||
        contentType.Contains("+json", StringComparison.OrdinalIgnoreCase);

    private static bool IsBinary(string contentType) =>
        contentType.StartsWith("application/octet-stream", StringComparison.OrdinalIgnoreCase);

    internal static bool IsValidJson(ReadOnlySpan<byte> data)
    {
        var reader = new Utf8JsonReader(data);
        try
        {
            return JsonDocument.TryParseValue(ref reader, out var document) && DisposeTrue(document);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static bool DisposeTrue(JsonDocument? document)
    {
        document?.Dispose();
        return true;
    }
}
