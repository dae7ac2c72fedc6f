using System.Text.Json;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using SharedRuntime.Components;
using AppCallbackGrpc = Dapr.AppCallback.Autogen.Grpc.v1;

namespace SharedRuntime.AppChannel;

internal sealed partial class EventDelivery
{
    private static readonly HashSet<string> EnvelopeAttributes = new(StringComparer.Ordinal)
    {
        "id", "source", "type", "specversion", "datacontenttype", "data", "data_base64", "topic", "pubsubname",
    };

    /// <summary>
    /// An event for an app that speaks gRPC, as Dapr sends it: AppCallback/OnTopicEvent with the CloudEvent's id,
    /// source, type, spec version and data content type, its data (JSON as its text, <c>data_base64</c> decoded, a
    /// string as its UTF-8 bytes), the topic, pubsub and route path, and its other attributes as extensions. The
    /// trace parent and publisher travel as metadata, as they do in headers over HTTP.
    /// </summary>
    private static HttpRequestMessage TopicEventRequest(AppChannel channel, Content content, string pubsubName, string topic, string? publisher, string? traceParent)
    {
        using var document = JsonDocument.Parse(content.Body);
        var root = document.RootElement;
        var envelope = new AppCallbackGrpc.TopicEventRequest
        {
            Id = StringOf(root, "id"),
            Source = StringOf(root, "source"),
            Type = StringOf(root, "type"),
            SpecVersion = StringOf(root, "specversion"),
            DataContentType = StringOf(root, "datacontenttype"),
            Topic = topic,
            PubsubName = pubsubName,
            Path = content.Path!.TrimStart('/'),
            Data = DataOf(root),
        };
        if (ExtensionsOf(root) is { } extensions)
        {
            envelope.Extensions = extensions;
        }
        var request = AppCallbackCalls.Request(channel, AppCallbackCalls.AppCallback, "OnTopicEvent", envelope);
        if (traceParent is not null)
        {
            request.Headers.TryAddWithoutValidation("traceparent", traceParent);
        }
        if (publisher is not null)
        {
            request.Headers.TryAddWithoutValidation(PublisherHeader, publisher);
        }
        return request;
    }

    /// <summary>
    /// A batch for an app that speaks gRPC, as Dapr sends it: AppCallback/OnBulkTopicEvent, or for an app that does not
    /// implement it AppCallbackAlpha/OnBulkTopicEventAlpha1, with every entry's CloudEvent in parts (as for a single
    /// event), its id, content type and metadata, and the topic, pubsub and path.
    /// </summary>
    private static async ValueTask<AppCallResult> SendBulkTopicEventAsync(AppChannel channel, string path, SubscriptionDelivery.ActiveSubscription subscription,
        IReadOnlyList<BulkEntry> entries, string[] ids, CancellationToken cancellationToken)
    {
        var bulk = new AppCallbackGrpc.TopicEventBulkRequest
        {
            Id = Guid.NewGuid().ToString(),
            Topic = subscription.Topic,
            PubsubName = subscription.PubsubName,
            Type = "com.dapr.event.sent.bulk",
            Path = path.TrimStart('/'),
        };
        for (var i = 0; i < entries.Count; i++)
        {
            using var document = JsonDocument.Parse(entries[i].Content.Body);
            var root = document.RootElement;
            var entry = new AppCallbackGrpc.TopicEventBulkRequestEntry
            {
                EntryId = ids[i],
                ContentType = "application/cloudevents+json",
                CloudEvent = new AppCallbackGrpc.TopicEventCERequest
                {
                    Id = StringOf(root, "id"),
                    Source = StringOf(root, "source"),
                    Type = StringOf(root, "type"),
                    SpecVersion = StringOf(root, "specversion"),
                    DataContentType = StringOf(root, "datacontenttype"),
                    Data = DataOf(root),
                    Extensions = ExtensionsOf(root),
                },
            };
            foreach (var (key, value) in entries[i].Message.Metadata)
            {
                entry.Metadata[key] = value;
            }
            bulk.Entries.Add(entry);
        }
        var result = await channel.SendAsync(AppCallbackCalls.Request(channel, AppCallbackCalls.AppCallback, "OnBulkTopicEvent", bulk), ClassifyBulkTopicEventAsync,
            cancellationToken).ConfigureAwait(false);
        if (result.StatusCode != 404)
        {
            return result;
        }
        return await channel.SendAsync(AppCallbackCalls.Request(channel, AppCallbackCalls.Alpha, "OnBulkTopicEventAlpha1", bulk), ClassifyBulkTopicEventAsync,
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Each entry's status as the app answered it; UNIMPLEMENTED (from both methods) drops the batch as a 404 does over HTTP.</summary>
    internal static async ValueTask<AppCallResult> ClassifyBulkTopicEventAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        using (response)
        {
            var answer = await AppCallbackCalls.ReadUnaryAsync(response, AppCallbackGrpc.TopicEventBulkResponse.Parser, MaxBulkAnswerBytes, cancellationToken).ConfigureAwait(false);
            if (answer.Code == StatusCode.Unimplemented)
            {
                return new AppCallResult { StatusCode = 404, Delivery = DeliveryOutcome.Drop };
            }
            if (answer.Code != StatusCode.OK)
            {
                return new AppCallResult
                {
                    StatusCode = BuildingBlocks.DaprErrors.HttpStatusOf(answer.Code), Failed = true, Delivery = DeliveryOutcome.Retry,
                    Problem = $"the app answered gRPC status {answer.Code}: {answer.Detail}",
                };
            }
            var statuses = new Dictionary<string, DeliveryOutcome>(StringComparer.Ordinal);
            foreach (var status in answer.Message!.Statuses)
            {
                statuses[status.EntryId] = status.Status switch
                {
                    AppCallbackGrpc.TopicEventResponse.Types.TopicEventResponseStatus.Success => DeliveryOutcome.Success,
                    AppCallbackGrpc.TopicEventResponse.Types.TopicEventResponseStatus.Drop => DeliveryOutcome.Drop,
                    _ => DeliveryOutcome.Retry,
                };
            }
            return new AppCallResult { StatusCode = 200, Delivery = DeliveryOutcome.Success, Statuses = statuses };
        }
    }

    /// <summary>The CloudEvent's attributes other than the envelope's own, at most 64.</summary>
    private static Struct? ExtensionsOf(JsonElement root)
    {
        var extensions = new Struct();
        foreach (var property in root.EnumerateObject())
        {
            if (!EnvelopeAttributes.Contains(property.Name) && extensions.Fields.Count < 64)
            {
                extensions.Fields[property.Name] = Value.Parser.ParseJson(property.Value.GetRawText());
            }
        }
        return extensions.Fields.Count > 0 ? extensions : null;
    }

    private static string StringOf(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()! : "";

    private static ByteString DataOf(JsonElement root)
    {
        if (root.TryGetProperty("data_base64", out var base64) && base64.ValueKind == JsonValueKind.String && base64.TryGetBytesFromBase64(out var bytes))
        {
            return UnsafeByteOperations.UnsafeWrap(bytes);
        }
        if (!root.TryGetProperty("data", out var data) || data.ValueKind == JsonValueKind.Null)
        {
            return ByteString.Empty;
        }
        return data.ValueKind == JsonValueKind.String && !BuildingBlocks.PublishApi.IsJson(StringOf(root, "datacontenttype"))
            ? ByteString.CopyFromUtf8(data.GetString()!)
            : ByteString.CopyFromUtf8(data.GetRawText());
    }

    /// <summary>
    /// Dapr's reading of an OnTopicEvent answer: SUCCESS (or no status) acknowledges, DROP drops, RETRY or an unknown
    /// status fails the attempt; UNIMPLEMENTED drops as a 404 does over HTTP; any other gRPC error fails the attempt.
    /// </summary>
    internal static async ValueTask<AppCallResult> ClassifyTopicEventAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        using (response)
        {
            var answer = await AppCallbackCalls.ReadUnaryAsync(response, AppCallbackGrpc.TopicEventResponse.Parser, MaxAnswerBytes, cancellationToken).ConfigureAwait(false);
            return answer switch
            {
                { Code: StatusCode.Unimplemented } => new AppCallResult { StatusCode = 404, Delivery = DeliveryOutcome.Drop },
                { Code: not StatusCode.OK } => new AppCallResult
                {
                    StatusCode = BuildingBlocks.DaprErrors.HttpStatusOf(answer.Code), Failed = true, Delivery = DeliveryOutcome.Retry,
                    Problem = $"the app answered gRPC status {answer.Code}: {answer.Detail}",
                },
                { Message.Status: AppCallbackGrpc.TopicEventResponse.Types.TopicEventResponseStatus.Success } => new AppCallResult { StatusCode = 200, Delivery = DeliveryOutcome.Success },
                { Message.Status: AppCallbackGrpc.TopicEventResponse.Types.TopicEventResponseStatus.Drop } => new AppCallResult { StatusCode = 200, Delivery = DeliveryOutcome.Drop },
                { Message.Status: AppCallbackGrpc.TopicEventResponse.Types.TopicEventResponseStatus.Retry } => new AppCallResult
                {
                    StatusCode = 200, Failed = true, Delivery = DeliveryOutcome.Retry, Problem = "the app answered RETRY",
                },
                _ => new AppCallResult
                {
                    StatusCode = 200, Failed = true, Delivery = DeliveryOutcome.Retry, Problem = $"the app answered an unknown status '{answer.Message?.Status}'",
                },
            };
        }
    }
}
