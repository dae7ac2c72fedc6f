using System.Buffers;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SharedRuntime.Admission;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Components;
using SharedRuntime.Diagnostics;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Http;

/// <summary>HTTP handlers of the Dapr API. Secrets: one secret and bulk.</summary>
internal sealed partial class DaprHttpHandlers
{
    private async Task GetSecret(HttpContext context)
    {
        var secret = await secretApi.GetAsync(context.Tenant(), context.RouteValue("storeName"), context.RouteValue("key"), context.QueryMetadata(), context.RequestAborted);
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteStringMap(writer, secret);
        }
        await WriteJsonAsync(context, 200, buffer.WrittenMemory);
    }

    private async Task GetBulkSecret(HttpContext context)
    {
        var secrets = await secretApi.GetBulkAsync(context.Tenant(), context.RouteValue("storeName"), context.QueryMetadata(), context.RequestAborted);
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var (name, values) in secrets.OrderBy(s => s.Key, StringComparer.Ordinal))
            {
                writer.WritePropertyName(name);
                WriteStringMap(writer, values);
            }
            writer.WriteEndObject();
        }
        await WriteJsonAsync(context, 200, buffer.WrittenMemory);
    }

    private static void WriteStringMap(Utf8JsonWriter writer, IReadOnlyDictionary<string, string> map)
    {
        writer.WriteStartObject();
        foreach (var (key, value) in map.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            writer.WriteString(key, value);
        }
        writer.WriteEndObject();
    }
}
