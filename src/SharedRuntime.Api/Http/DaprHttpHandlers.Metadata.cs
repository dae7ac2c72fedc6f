using System.Buffers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using SharedRuntime.Admission;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Components;
using SharedRuntime.Diagnostics;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Http;

/// <summary>HTTP handlers of the Dapr API. Metadata: read, set, and the shutdown API.</summary>
internal sealed partial class DaprHttpHandlers
{
    private async Task GetMetadata(HttpContext context)
    {
        var view = metadataApi.Describe(context.Tenant());
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("id", view.AppId);
            writer.WriteString("runtimeVersion", MetadataApi.RuntimeVersion);
            writer.WriteStartArray("enabledFeatures");
            writer.WriteEndArray();
            writer.WriteStartArray("actors");
            writer.WriteEndArray();
            writer.WriteStartArray("components");
            foreach (var component in view.Components)
            {
                writer.WriteStartObject();
                writer.WriteString("name", component.Name);
                writer.WriteString("type", component.Type);
                writer.WriteString("version", component.Version);
                writer.WriteStartArray("capabilities");
                foreach (var capability in component.Capabilities)
                {
                    writer.WriteStringValue(capability);
                }
                writer.WriteEndArray();
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteStartArray("subscriptions");
            foreach (var subscription in view.Subscriptions)
            {
                writer.WriteStartObject();
                writer.WriteString("pubsubname", subscription.PubsubName);
                writer.WriteString("topic", subscription.Topic);
                writer.WritePropertyName("metadata");
                WriteStringMap(writer, subscription.Metadata);
                writer.WriteStartArray("rules");
                foreach (var rule in subscription.Routes.Rules)
                {
                    writer.WriteStartObject();
                    writer.WriteString("match", rule.Match);
                    writer.WriteString("path", rule.Path);
                    writer.WriteEndObject();
                }
                if (subscription.Routes.Default is { } fallback)
                {
                    writer.WriteStartObject();
                    writer.WriteString("match", "");
                    writer.WriteString("path", fallback);
                    writer.WriteEndObject();
                }
                writer.WriteEndArray();
                if (subscription.DeadLetterTopic is { } deadLetter)
                {
                    writer.WriteString("deadLetterTopic", deadLetter);
                }
                writer.WriteString("type", subscription.Source.StartsWith("GET /dapr/subscribe", StringComparison.Ordinal) ? "PROGRAMMATIC" : "DECLARATIVE");
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteStartArray("httpEndpoints");
            writer.WriteEndArray();
            writer.WritePropertyName("extended");
            WriteStringMap(writer, view.Extended);
            writer.WriteEndObject();
        }
        await WriteJsonAsync(context, 200, buffer.WrittenMemory);
    }

    private async Task PutMetadata(HttpContext context)
    {
        var body = await context.ReadBodyAsync();
        MetadataApi.Set(context.Tenant(), context.RouteValue("key"), Encoding.UTF8.GetString(body));
        context.Response.StatusCode = 204;
    }

    private Task Shutdown(HttpContext context)
    {
        ApiLog.ShutdownIgnored(_logger, context.Tenant().AppId);
        context.Response.StatusCode = 204;
        return Task.CompletedTask;
    }
}
