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
/// </summary>
internal sealed class EventDelivery(AppChannels channels, ResiliencyPolicies policies, Metrics.RuntimeMetrics metrics, ILogger logger)
{
    private const int MaxAnswerBytes = 64 * 1024;

    public async ValueTask<DeliveryOutcome> DeliverCountedAsync(SubscriptionDelivery.ActiveSubscription subscription, ReceivedMessage message, CancellationToken cancellationToken)
    {
        var (outcome, label) = await DeliverAsync(subscription, message, cancellationToken).ConfigureAwait(false);
        metrics.Delivered(subscription.AppId, subscription.PubsubName, label);
        return outcome;
    }

    private static readonly (DeliveryOutcome, string) Retry = (DeliveryOutcome.Retry, "retry");
    private static readonly (DeliveryOutcome, string) Dropped = (DeliveryOutcome.Drop, "dropped");

    public async ValueTask<(DeliveryOutcome Outcome, string Label)> DeliverAsync(SubscriptionDelivery.ActiveSubscription subscription, ReceivedMessage message, CancellationToken cancellationToken)
    {
        var channel = channels.Find(subscription.AppId);
        if (channel is null)
        {
            return Retry;
        }
        var compiled = subscription.Compiled;
        var (body, contentType) = Envelope(message, compiled, subscription.PubsubName);
        var path = compiled.RouteOf(body);
        if (path is null)
        {
            DeliveryLog.NoRoute(logger, subscription.AppId, message.Topic);
            return Dropped;
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
            var traceparent = TraceParentOf(body, contentType);
            result = await pipeline.ExecuteAsync(
                static async (state, token) =>
                {
                    var (channel, path, body, contentType, traceparent) = state;
                    var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"{channel.Endpoint.OriginalString}/{path.TrimStart('/')}", UriKind.Absolute))
                    {
                        Content = new ReadOnlyMemoryContent(body),
                    };
                    request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
                    if (traceparent is not null)
                    {
                        request.Headers.TryAddWithoutValidation("traceparent", traceparent);
                    }
                    if (channel.Config.AppApiToken is { } appToken)
                    {
                        request.Headers.TryAddWithoutValidation("dapr-api-token", appToken);
                    }
                    return await channel.SendAsync(request, EventDelivery.ClassifyAsync, token).ConfigureAwait(false);
                },
                (channel, path, body, contentType, traceparent),
                cancellationToken).ConfigureAwait(false);

            if (!result.Failed)
            {
                if (result.Delivery == DeliveryOutcome.Drop && result.StatusCode != 404)
                {
                    DeliveryLog.Dropped(logger, subscription.AppId, message.Topic, result.StatusCode);
                    return await DeadLetterAsync(subscription, message, cancellationToken).ConfigureAwait(false);
                }
                return result.Delivery == DeliveryOutcome.Success ? (DeliveryOutcome.Success, "success") : Dropped;
            }
            DeliveryLog.Failed(logger, subscription.AppId, message.Topic, message.Attempt, result.Problem ?? $"status {result.StatusCode}");
            return await DeadLetterAsync(subscription, message, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is CircuitOpenException)
        {
            return Retry;
        }
        catch (Exception ex) when (ex is TimeoutException or TimeoutRejectedException or HttpRequestException)
        {
            DeliveryLog.Failed(logger, subscription.AppId, message.Topic, message.Attempt, ex.Message);
            return await DeadLetterAsync(subscription, message, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            result?.Dispose();
            channel.Calls.Exit();
        }
    }

    /// <summary>Sends the event to the subscription's dead-letter topic and acknowledges it; without one (or when that fails) it stays in the broker.</summary>
    private async ValueTask<(DeliveryOutcome, string)> DeadLetterAsync(SubscriptionDelivery.ActiveSubscription subscription, ReceivedMessage message, CancellationToken cancellationToken)
    {
        if (subscription.Config.DeadLetterTopic is not { Length: > 0 } deadLetter)
        {
            return Retry;
        }
        try
        {
            await subscription.Broker.PublishAsync(new PubSubMessage(deadLetter, message.Data, message.ContentType, message.Metadata), cancellationToken).ConfigureAwait(false);
            DeliveryLog.DeadLettered(logger, subscription.AppId, message.Topic, deadLetter);
            return (DeliveryOutcome.Drop, "dead_lettered");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            DeliveryLog.DeadLetterFailed(logger, subscription.AppId, message.Topic, deadLetter, ex.Message);
            return Retry;
        }
    }

    internal static async ValueTask<AppCallResult> ClassifyAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        using (response)
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
            var answer = await ReadBoundedAsync(response.Content, cancellationToken).ConfigureAwait(false);
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

    private static async Task<byte[]> ReadBoundedAsync(HttpContent content, CancellationToken cancellationToken)
    {
        await using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = new byte[MaxAnswerBytes];
        var total = 0;
        int read;
        while (total < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false)) > 0)
        {
            total += read;
        }
        return buffer[..total];
    }

    /// <summary>
    /// The bytes sent to the app: a CloudEvent as published; a raw message wrapped in one (data_base64 for binary),
    /// unless the subscription asks for raw payloads with <c>rawPayload: "true"</c>.
    /// </summary>
    internal static (ReadOnlyMemory<byte> Body, string ContentType) Envelope(ReceivedMessage message, CompiledSubscription subscription, string pubsubName)
    {
        var isCloudEvent = message.ContentType.StartsWith("application/cloudevents+json", StringComparison.OrdinalIgnoreCase);
        if (isCloudEvent || subscription.IsRaw)
        {
            return (message.Data, isCloudEvent ? "application/cloudevents+json" : message.ContentType);
        }
        var buffer = new ArrayBufferWriter<byte>(message.Data.Length * 4 / 3 + 256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("id", Guid.NewGuid().ToString());
            writer.WriteString("source", pubsubName);
            writer.WriteString("type", "com.dapr.event.sent");
            writer.WriteString("specversion", "1.0");
            writer.WriteString("datacontenttype", message.ContentType);
            writer.WriteString("topic", message.Topic);
            writer.WriteString("pubsubname", pubsubName);
            writer.WriteBase64String("data_base64", message.Data.Span);
            writer.WriteEndObject();
        }
        return (buffer.WrittenMemory, "application/cloudevents+json");
    }

    private static string? TraceParentOf(ReadOnlyMemory<byte> body, string contentType)
    {
        if (!contentType.StartsWith("application/cloudevents+json", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }
        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.ValueKind == JsonValueKind.Object &&
                   document.RootElement.TryGetProperty("traceparent", out var value) && value.ValueKind == JsonValueKind.String
                ? value.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
