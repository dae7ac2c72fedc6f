using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SharedRuntime.Admission;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Components;
using SharedRuntime.Diagnostics;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Http;

/// <summary>HTTP handlers of the Dapr API. Pub/sub: publish and bulk publish.</summary>
internal sealed partial class DaprHttpHandlers
{
    private async Task Publish(HttpContext context)
    {
        var tenant = context.Tenant();
        var body = await context.ReadBodyAsync();
        var request = new PublishRequest(
            context.RouteValue("pubsubName"),
            context.RouteValue("topic"),
            body,
            context.Request.ContentType,
            context.QueryMetadata(),
            context.Request.Headers["traceparent"].ToString() is { Length: > 0 } tp ? tp : null,
            context.Request.Headers["tracestate"].ToString() is { Length: > 0 } ts ? ts : null);
        await publishApi.PublishAsync(tenant, request, context.RequestAborted);
        context.Response.StatusCode = 204;
    }

    private async Task BulkPublish(HttpContext context)
    {
        var tenant = context.Tenant();
        var pubsub = context.RouteValue("pubsubName");
        var topic = context.RouteValue("topic");
        var metadata = context.QueryMetadata();
        using var json = await context.ReadJsonAsync();
        if (json is null || json.RootElement.ValueKind != JsonValueKind.Array)
        {
            throw Errors.Malformed("the body must be a JSON array of entries");
        }
        var entries = new List<BulkPublishEntry>(json.RootElement.GetArrayLength());
        foreach (var element in json.RootElement.EnumerateArray())
        {
            var contentType = element.GetString("contentType");
            var eventElement = element.Get("event");
            byte[] data = eventElement.ValueKind switch
            {
                JsonValueKind.String when contentType is null || !contentType.Contains("json", StringComparison.OrdinalIgnoreCase) => Encoding.UTF8.GetBytes(eventElement.GetString()!),
                JsonValueKind.Undefined => [],
                _ => JsonMarshal.GetRawUtf8Value(eventElement).ToArray(),
            };
            entries.Add(new BulkPublishEntry(element.GetString("entryId") ?? "", data,
                contentType ?? (eventElement.ValueKind == JsonValueKind.String ? "text/plain" : "application/json"),
                HttpRequestReader.StringMap(element.Get("metadata"), "metadata")));
        }
        var failed = await publishApi.BulkPublishAsync(tenant, pubsub, topic, entries, metadata, context.RequestAborted);
        if (failed.Count == 0)
        {
            context.Response.StatusCode = 204;
            return;
        }
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteStartArray("failedEntries");
            foreach (var (entryId, error) in failed)
            {
                writer.WriteStartObject();
                writer.WriteString("entryId", entryId);
                writer.WriteString("error", error);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteString("errorCode", "ERR_PUBSUB_PUBLISH_MESSAGE");
            writer.WriteEndObject();
        }
        await WriteJsonAsync(context, 500, buffer.WrittenMemory);
    }
}
