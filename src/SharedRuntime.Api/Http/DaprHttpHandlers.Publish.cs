using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
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
        var api = publishApi;
        var pubsub = context.RouteValue("pubsubName");
        var topic = context.RouteValue("topic");
        var metadata = context.QueryMetadata();
        using var json = await context.ReadJsonAsync();
        if (json is null || json.RootElement.ValueKind != JsonValueKind.Array)
        {
            throw Errors.Malformed("the body must be a JSON array of entries");
        }
        var failed = new List<(string EntryId, string Error)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var entries = new List<(string EntryId, PublishRequest Request)>();
        foreach (var element in json.RootElement.EnumerateArray())
        {
            var entryId = element.GetString("entryId");
            if (string.IsNullOrEmpty(entryId) || !seen.Add(entryId))
            {
                throw Errors.Malformed("every entry needs a unique entryId");
            }
            var contentType = element.GetString("contentType");
            var eventElement = element.Get("event");
            byte[] data = eventElement.ValueKind switch
            {
                JsonValueKind.String when contentType is null || !contentType.Contains("json", StringComparison.OrdinalIgnoreCase) => Encoding.UTF8.GetBytes(eventElement.GetString()!),
                JsonValueKind.Undefined => [],
                _ => JsonMarshal.GetRawUtf8Value(eventElement).ToArray(),
            };
            var entryMetadata = new Dictionary<string, string>(metadata, StringComparer.Ordinal);
            foreach (var (k, v) in HttpRequestReader.StringMap(element.Get("metadata"), "metadata") ?? [])
            {
                entryMetadata[k] = v;
            }
            entries.Add((entryId, new PublishRequest(pubsub, topic, data, contentType ?? (eventElement.ValueKind == JsonValueKind.String ? "text/plain" : "application/json"), entryMetadata)));
        }
        foreach (var (entryId, request) in entries)
        {
            try
            {
                await api.PublishAsync(tenant, request, context.RequestAborted);
            }
            catch (DaprApiException ex) when (ex.ErrorCode == "ERR_PUBSUB_PUBLISH_MESSAGE")
            {
                failed.Add((entryId, ex.Message));
            }
        }
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
