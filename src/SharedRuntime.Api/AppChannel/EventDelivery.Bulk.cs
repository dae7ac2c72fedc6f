using System.Buffers;
using System.Net.Http.Headers;
using System.Text.Json;
using Polly.Timeout;
using SharedRuntime.Components;

namespace SharedRuntime.AppChannel;

/// <summary>
/// Bulk subscriptions (Dapr's <c>bulkSubscribe</c>): each event is checked alone (poison, expired, no route) as for a
/// single delivery, then waits in its subscription's <see cref="BulkBatcher"/>; a batch is one POST of Dapr's bulk
/// envelope (<c>application/cloudevents-batch+json</c>: <c>id</c>, <c>entries</c> of <c>entryId</c>, <c>event</c>,
/// <c>contentType</c>, <c>metadata</c>; <c>topic</c>, <c>pubsubname</c>, <c>type</c>). The app answers
/// <c>{"statuses":[{"entryId","status"}]}</c>: each entry ends as its status says (SUCCESS, DROP, RETRY as for a single
/// event); an entry it does not name, or an unreadable answer, is RETRY; 404 drops them all; another status, a timeout
/// or a transport failure fails them all.
/// </summary>
internal sealed partial class EventDelivery
{
    /// <summary>Largest bulk answer read (a status for each of up to 1,000 entries).</summary>
    private const int MaxBulkAnswerBytes = 1024 * 1024;

    private static readonly MediaTypeHeaderValue BulkType = new("application/cloudevents-batch+json");

    public async ValueTask<DeliveryOutcome> DeliverBulkEntryCountedAsync(SubscriptionDelivery.ActiveSubscription subscription, ReceivedMessage message, CancellationToken cancellationToken)
    {
        var (outcome, label) = await DeliverBulkEntryAsync(subscription, message, cancellationToken).ConfigureAwait(false);
        metrics.Delivered(subscription.AppId, subscription.PubsubName, label);
        return outcome;
    }

    private async ValueTask<(DeliveryOutcome Outcome, string Label)> DeliverBulkEntryAsync(SubscriptionDelivery.ActiveSubscription subscription, ReceivedMessage message, CancellationToken cancellationToken)
    {
        try
        {
            var (content, ended) = await PrepareAsync(subscription, message, cancellationToken).ConfigureAwait(false);
            if (content is null)
            {
                return ended;
            }
            var verdict = await subscription.Batches!.JoinAsync(content.Path!, new BulkEntry(message, content), cancellationToken).ConfigureAwait(false);
            switch (verdict.Outcome)
            {
                case DeliveryOutcome.Success:
                    return (DeliveryOutcome.Success, "success");
                case DeliveryOutcome.Drop when verdict.Problem is null:
                    DeliveryLog.Dropped(logger, subscription.AppId, message.Topic, 200);
                    return subscription.Config.DeadLetterTopic is { Length: > 0 }
                        ? await EndAsync(subscription, message, "the app dropped it", "dropped", cancellationToken).ConfigureAwait(false)
                        : Dropped;
                case DeliveryOutcome.Drop:
                    return Dropped; // 404: as for a single event
                default:
                    DeliveryLog.Failed(logger, subscription.AppId, message.Topic, message.Attempt, verdict.Problem ?? "RETRY");
                    return await FailedAsync(subscription, message, verdict.Problem ?? "the app answered RETRY", cancellationToken, verdict.DeadLetter).ConfigureAwait(false);
            }
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

    /// <summary>One POST of a batch to the app; a verdict for every entry, in order. Never throws but for cancellation.</summary>
    internal async Task<IReadOnlyList<BulkVerdict>> SendBatchAsync(SubscriptionDelivery.ActiveSubscription subscription, string path, IReadOnlyList<BulkEntry> entries,
        CancellationToken cancellationToken)
    {
        IReadOnlyList<BulkVerdict> All(BulkVerdict verdict) => [.. entries.Select(_ => verdict)];
        var channel = channels.Find(subscription.AppId);
        if (channel is null)
        {
            return All(new BulkVerdict(DeliveryOutcome.Retry, "the app has no channel", DeadLetter: false));
        }
        var ids = entries.Select(_ => Guid.NewGuid().ToString()).ToArray();
        var body = channel.Protocol == Configuration.AppProtocol.Grpc ? ReadOnlyMemory<byte>.Empty : BulkEnvelope(subscription, entries, ids);
        await channel.Calls.EnterAsync(subscription.DeliveryLine, int.MaxValue, cancellationToken).ConfigureAwait(false);
        AppCallResult? result = null;
        try
        {
            var pipeline = policies.ForInbound(subscription.AppId, subscription.PubsubName);
            result = await pipeline.ExecuteAsync(
                static async (state, token) =>
                {
                    var (channel, path, body, subscription, entries, ids) = state;
                    if (channel.Protocol == Configuration.AppProtocol.Grpc)
                    {
                        return await SendBulkTopicEventAsync(channel, path, subscription, entries, ids, token).ConfigureAwait(false);
                    }
                    var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"{channel.Endpoint.OriginalString}/{path.TrimStart('/')}", UriKind.Absolute))
                    {
                        Content = new ReadOnlyMemoryContent(body),
                    };
                    request.Content.Headers.ContentType = BulkType;
                    if (channel.Config.AppApiToken is { } appToken)
                    {
                        request.Headers.TryAddWithoutValidation("dapr-api-token", appToken);
                    }
                    return await channel.SendAsync(request, EventDelivery.ClassifyBulkAsync, token).ConfigureAwait(false);
                },
                (channel, path, body, subscription, entries, ids),
                cancellationToken).ConfigureAwait(false);
            if (result.Failed)
            {
                return All(new BulkVerdict(DeliveryOutcome.Retry, result.Problem ?? $"status {result.StatusCode}"));
            }
            if (result.Statuses is null)
            {
                return All(new BulkVerdict(DeliveryOutcome.Drop, result.StatusCode == 404 ? "404" : null));
            }
            var verdicts = new BulkVerdict[entries.Count];
            for (var i = 0; i < entries.Count; i++)
            {
                verdicts[i] = result.Statuses.TryGetValue(ids[i], out var status)
                    ? status switch
                    {
                        DeliveryOutcome.Success => new BulkVerdict(DeliveryOutcome.Success),
                        DeliveryOutcome.Drop => new BulkVerdict(DeliveryOutcome.Drop),
                        _ => new BulkVerdict(DeliveryOutcome.Retry, "the app answered RETRY for the entry"),
                    }
                    : new BulkVerdict(DeliveryOutcome.Retry, "the app's bulk answer names no status for the entry");
            }
            return verdicts;
        }
        catch (CircuitOpenException)
        {
            return All(new BulkVerdict(DeliveryOutcome.Retry, "the app's circuit is open", DeadLetter: false));
        }
        catch (Exception ex) when (ex is TimeoutException or TimeoutRejectedException or HttpRequestException)
        {
            return All(new BulkVerdict(DeliveryOutcome.Retry, ex.Message));
        }
        finally
        {
            result?.Dispose();
            channel.Calls.Exit();
        }
    }

    /// <summary>Dapr's bulk envelope for <paramref name="entries"/>, each under its id in <paramref name="ids"/>.</summary>
    private static ReadOnlyMemory<byte> BulkEnvelope(SubscriptionDelivery.ActiveSubscription subscription, IReadOnlyList<BulkEntry> entries, string[] ids)
    {
        var buffer = new ArrayBufferWriter<byte>((int)Math.Min(int.MaxValue, entries.Sum(e => e.Bytes) + 128L * entries.Count + 256));
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("id", Guid.NewGuid().ToString());
            writer.WriteStartArray("entries");
            for (var i = 0; i < entries.Count; i++)
            {
                writer.WriteStartObject();
                writer.WriteString("entryId", ids[i]);
                writer.WritePropertyName("event");
                writer.WriteRawValue(entries[i].Content.Body.Span, skipInputValidation: true);
                writer.WriteString("contentType", "application/cloudevents+json");
                writer.WriteStartObject("metadata");
                foreach (var (key, value) in entries[i].Message.Metadata)
                {
                    writer.WriteString(key, value);
                }
                writer.WriteEndObject();
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteStartObject("metadata");
            writer.WriteEndObject();
            writer.WriteString("topic", subscription.Topic);
            writer.WriteString("pubsubname", subscription.PubsubName);
            writer.WriteString("type", "com.dapr.event.sent.bulk");
            writer.WriteEndObject();
        }
        return buffer.WrittenMemory;
    }

    internal static async ValueTask<AppCallResult> ClassifyBulkAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        using (response)
        {
            if (StatusVerdict(response) is { } byStatus)
            {
                return byStatus;
            }
            var status = (int)response.StatusCode;
            var answer = await ReadBoundedAsync(response.Content, MaxBulkAnswerBytes, cancellationToken).ConfigureAwait(false);
            var statuses = new Dictionary<string, DeliveryOutcome>(StringComparer.Ordinal);
            try
            {
                using var document = JsonDocument.Parse(answer);
                if (document.RootElement.ValueKind == JsonValueKind.Object && Property(document.RootElement, "statuses") is { ValueKind: JsonValueKind.Array } list)
                {
                    foreach (var item in list.EnumerateArray())
                    {
                        if (item.ValueKind == JsonValueKind.Object && Property(item, "entryId") is { ValueKind: JsonValueKind.String } id)
                        {
                            statuses[id.GetString()!] = (Property(item, "status") is { ValueKind: JsonValueKind.String } verdict ? verdict.GetString() : null)?.ToUpperInvariant() switch
                            {
                                "SUCCESS" => DeliveryOutcome.Success,
                                "DROP" => DeliveryOutcome.Drop,
                                _ => DeliveryOutcome.Retry,
                            };
                        }
                    }
                }
            }
            catch (JsonException)
            {
                // Not JSON: every entry is RETRY, as in Dapr.
            }
            return new AppCallResult { StatusCode = status, Delivery = DeliveryOutcome.Success, Statuses = statuses };
        }
    }

    private static JsonElement? Property(JsonElement element, string name)
    {
        foreach (var property in element.EnumerateObject())
        {
            if (property.Name.Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return property.Value;
            }
        }
        return null;
    }
}
