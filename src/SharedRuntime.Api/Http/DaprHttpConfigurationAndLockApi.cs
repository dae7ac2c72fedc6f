using System.Buffers;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.BuildingBlocks;

namespace SharedRuntime.Http;

/// <summary>The configuration and lock routes of the Dapr HTTP API.</summary>
internal static class DaprHttpConfigurationAndLockApi
{
    public static IEndpointRouteBuilder MapDaprHttpConfigurationAndLock(this IEndpointRouteBuilder endpoints)
    {
        foreach (var version in new[] { "v1.0", "v1.0-alpha1" })
        {
            endpoints.MapGet($"/{version}/configuration/{{storeName}}", GetConfiguration)
                .WithMetadata(new ApiEndpointMetadata(Listener.DaprHttp, "configuration"));
            endpoints.MapGet($"/{version}/configuration/{{storeName}}/subscribe", SubscribeConfiguration)
                .WithMetadata(new ApiEndpointMetadata(Listener.DaprHttp, "configuration"));
            endpoints.MapGet($"/{version}/configuration/{{storeName}}/{{id}}/unsubscribe", UnsubscribeConfiguration)
                .WithMetadata(new ApiEndpointMetadata(Listener.DaprHttp, "configuration"));
        }
        // The form Dapr's older reference documents, without the store.
        endpoints.MapGet("/v1.0-alpha1/configuration/{id}/unsubscribe", UnsubscribeConfiguration)
            .WithMetadata(new ApiEndpointMetadata(Listener.DaprHttp, "configuration"));
        endpoints.MapPost("/v1.0-alpha1/lock/{storeName}", Lock).WithMetadata(new ApiEndpointMetadata(Listener.DaprHttp, "lock"));
        endpoints.MapPost("/v1.0-alpha1/unlock/{storeName}", Unlock).WithMetadata(new ApiEndpointMetadata(Listener.DaprHttp, "lock"));
        return endpoints;
    }

    private static List<string> Keys(HttpContext context) => context.Request.Query["key"].Where(k => !string.IsNullOrEmpty(k)).Select(k => k!).ToList();

    /// <summary>
    /// Dapr's HTTP subscription: answers <c>{"id"}</c>; the runtime then posts each change to the app at
    /// <c>POST /configuration/&lt;store&gt;/&lt;key&gt;</c> until the app unsubscribes.
    /// </summary>
    private static async Task SubscribeConfiguration(HttpContext context)
    {
        var id = await context.RequestServices.GetRequiredService<ConfigurationApi>()
            .SubscribeForAppAsync(context.Tenant(), context.RouteValue("storeName"), Keys(context), context.RequestAborted);
        await WriteAsync(context, writer =>
        {
            writer.WriteStartObject();
            writer.WriteString("id", id);
            writer.WriteEndObject();
        });
    }

    /// <summary>
    /// <c>{"ok": true}</c> when the app had that subscription. An id the app does not have (another app's included) is
    /// 400 ERR_CONFIGURATION_UNSUBSCRIBE: the caller's mistake, where Dapr answers 500.
    /// </summary>
    private static async Task UnsubscribeConfiguration(HttpContext context)
    {
        var id = context.RouteValue("id");
        var store = context.Request.RouteValues.ContainsKey("storeName") ? context.RouteValue("storeName") : null;
        if (!context.RequestServices.GetRequiredService<ConfigurationApi>().Unsubscribe(context.Tenant().AppId, store, id))
        {
            throw new DaprApiException(400, "ERR_CONFIGURATION_UNSUBSCRIBE", $"failed to unsubscribe from configuration: subscription with id {id} does not exist");
        }
        await WriteAsync(context, writer =>
        {
            writer.WriteStartObject();
            writer.WriteBoolean("ok", true);
            writer.WriteEndObject();
        });
    }

    private static async Task GetConfiguration(HttpContext context)
    {
        var keys = Keys(context);
        var items = await context.RequestServices.GetRequiredService<ConfigurationApi>()
            .GetAsync(context.Tenant(), context.RouteValue("storeName"), keys, context.RequestAborted);
        await WriteAsync(context, writer =>
        {
            writer.WriteStartObject();
            foreach (var (key, item) in items.OrderBy(i => i.Key, StringComparer.Ordinal))
            {
                writer.WriteStartObject(key);
                writer.WriteString("value", item.Value);
                writer.WriteString("version", item.Version);
                writer.WriteStartObject("metadata");
                foreach (var (name, value) in item.Metadata)
                {
                    writer.WriteString(name, value);
                }
                writer.WriteEndObject();
                writer.WriteEndObject();
            }
            writer.WriteEndObject();
        });
    }

    private static async Task Lock(HttpContext context)
    {
        using var json = await context.ReadJsonAsync();
        var root = json?.RootElement ?? default;
        var expiry = root.Get("expiryInSeconds");
        var success = await context.RequestServices.GetRequiredService<LockApi>().TryLockAsync(context.Tenant(), context.RouteValue("storeName"),
            root.GetString("resourceId") ?? "", root.GetString("lockOwner") ?? "",
            expiry.ValueKind == JsonValueKind.Number && expiry.TryGetInt32(out var seconds) ? seconds : 0, context.RequestAborted);
        await WriteAsync(context, writer =>
        {
            writer.WriteStartObject();
            writer.WriteBoolean("success", success);
            writer.WriteEndObject();
        });
    }

    private static async Task Unlock(HttpContext context)
    {
        using var json = await context.ReadJsonAsync();
        var root = json?.RootElement ?? default;
        var status = await context.RequestServices.GetRequiredService<LockApi>().UnlockAsync(context.Tenant(), context.RouteValue("storeName"),
            root.GetString("resourceId") ?? "", root.GetString("lockOwner") ?? "", context.RequestAborted);
        await WriteAsync(context, writer =>
        {
            writer.WriteStartObject();
            writer.WriteNumber("status", (int)status);
            writer.WriteEndObject();
        });
    }

    private static Task WriteAsync(HttpContext context, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }
        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/json";
        return context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).AsTask();
    }
}
