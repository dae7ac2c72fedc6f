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
            foreach (var name in view.HttpEndpoints)
            {
                writer.WriteStartObject();
                writer.WriteString("name", name);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WritePropertyName("extended");
            WriteStringMap(writer, view.Extended);
            WriteLimits(writer, context.Tenant());
            writer.WriteEndObject();
        }
        await WriteJsonAsync(context, 200, buffer.WrittenMemory);
    }

    /// <summary>
    /// SharedRuntime's own fields: the tenant's namespace (Kubernetes) and its effective limits, with the
    /// TenantLimitPolicies that set its ceiling and the limits they lowered from what the Tenant asked.
    /// </summary>
    private static void WriteLimits(Utf8JsonWriter writer, TenantContext tenant)
    {
        if (tenant.Namespace is { } ns)
        {
            writer.WriteString("namespace", ns);
        }
        var limits = tenant.Limits;
        writer.WriteStartObject("limits");
        writer.WriteNumber("requestsPerSecond", limits.RequestsPerSecond);
        writer.WriteNumber("burst", limits.Burst);
        writer.WriteNumber("maxConcurrency", limits.MaxConcurrency);
        writer.WriteNumber("maxQueue", limits.MaxQueue);
        writer.WriteNumber("maxRequestBodyBytes", limits.MaxRequestBodyBytes);
        writer.WriteNumber("stateMaxKeys", limits.StateMaxKeys);
        writer.WriteNumber("stateMaxBytes", limits.StateMaxBytes);
        writer.WriteNumber("maxMemoryBytes", limits.MaxMemoryBytes);
        if (tenant.Config.Ceiling is { } ceiling)
        {
            writer.WriteStartObject("ceiling");
            writer.WriteStartArray("policies");
            foreach (var policy in ceiling.Policies)
            {
                writer.WriteStringValue(policy);
            }
            writer.WriteEndArray();
            writer.WriteStartArray("clamped");
            foreach (var clamp in ceiling.Clamps(tenant.Config.Limits))
            {
                writer.WriteStringValue(clamp);
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        writer.WriteEndObject();
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
