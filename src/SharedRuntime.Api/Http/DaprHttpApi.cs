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

/// <summary>The Dapr HTTP API v1.0 (and the v1.0-alpha1 routes SDKs use), answered for the calling tenant.</summary>
public static class DaprHttpApi
{
    public static IEndpointRouteBuilder MapDaprHttpApi(this IEndpointRouteBuilder endpoints)
    {
        // Handlers hold the building blocks (singletons) directly: no per-request service scope on the hot path.
        ActivatorUtilities.CreateInstance<DaprHttpHandlers>(endpoints.ServiceProvider).Map(endpoints);
        return endpoints;
    }

    /// <summary>Stored JSON is embedded as JSON; anything else as a string.</summary>
    internal static void WriteData(Utf8JsonWriter writer, ReadOnlySpan<byte> data) => DaprHttpHandlers.WriteData(writer, data);
}

internal sealed class DaprHttpHandlers(
    RuntimeHealth health, StateApi stateApi, PublishApi publishApi, BindingApi bindingApi, SecretApi secretApi, MetadataApi metadataApi, ILoggerFactory loggers)
{
    private static readonly string[] Post = ["POST", "PUT"];
    private static readonly string[] Versions = ["v1.0", "v1.0-alpha1"];
    private readonly ILogger _logger = loggers.CreateLogger(typeof(DaprHttpApi).FullName!);

    public void Map(IEndpointRouteBuilder endpoints)
    {
        foreach (var version in Versions)
        {
            var v = $"/{version}";
            Map(endpoints, "GET", $"{v}/healthz", "healthz", Health, anonymous: true);
            Map(endpoints, "GET", $"{v}/healthz/outbound", "healthz", HealthOutbound, anonymous: true);

            Map(endpoints, "GET", $"{v}/state/{{storeName}}/{{key}}", "state", GetState);
            Map(endpoints, Post, $"{v}/state/{{storeName}}", "state", SaveState);
            Map(endpoints, "DELETE", $"{v}/state/{{storeName}}/{{key}}", "state", DeleteState);
            Map(endpoints, Post, $"{v}/state/{{storeName}}/bulk", "state", BulkGetState);
            Map(endpoints, Post, $"{v}/state/{{storeName}}/transaction", "state", Transaction);
            Map(endpoints, Post, $"{v}/state/{{storeName}}/query", "state", QueryState);

            Map(endpoints, Post, $"{v}/publish/bulk/{{pubsubName}}/{{**topic}}", "publish", BulkPublish);
            Map(endpoints, Post, $"{v}/publish/{{pubsubName}}/{{**topic}}", "publish", Publish);

            Map(endpoints, Post, $"{v}/bindings/{{name}}", "bindings", InvokeBinding);

            Map(endpoints, "GET", $"{v}/secrets/{{storeName}}/bulk", "secrets", GetBulkSecret);
            Map(endpoints, "GET", $"{v}/secrets/{{storeName}}/{{key}}", "secrets", GetSecret);

            Map(endpoints, "GET", $"{v}/metadata", "metadata", GetMetadata);
            Map(endpoints, "PUT", $"{v}/metadata/{{key}}", "metadata", PutMetadata);
            Map(endpoints, Post, $"{v}/shutdown", "shutdown", Shutdown);
        }
    }

    private static void Map(IEndpointRouteBuilder endpoints, string method, string pattern, string api, RequestDelegate handler, bool anonymous = false) =>
        Map(endpoints, [method], pattern, api, handler, anonymous);

    private static void Map(IEndpointRouteBuilder endpoints, string[] methods, string pattern, string api, RequestDelegate handler, bool anonymous = false) =>
        endpoints.MapMethods(pattern, methods, handler).WithMetadata(new ApiEndpointMetadata(Listener.DaprHttp, api, anonymous));

    // ---- health

    private Task Health(HttpContext context)
    {
        if (!health.IsReady)
        {
            return DaprErrorWriter.WriteAsync(context, new DaprApiException(500, "ERR_HEALTH_NOT_READY", $"the runtime is not ready: {health.NotReadyReason}"));
        }
        context.Response.StatusCode = 204;
        return Task.CompletedTask;
    }

    private Task HealthOutbound(HttpContext context)
    {
        context.Response.StatusCode = 204;
        return Task.CompletedTask;
    }

    // ---- state

    /// <summary>Reached through <see cref="StateGetRoute"/> (values from the path) or through the router (route values).</summary>
    public async Task GetState(HttpContext context)
    {
        var tenant = context.Tenant();
        if (!StateGetRoute.TryMatch(context.Request.Path.Value, out var storeName, out var key))
        {
            storeName = context.RouteValue("storeName");
            key = context.RouteValue("key");
        }
        var entry = await stateApi.GetAsync(tenant, storeName, key, context.RequestAborted);
        if (entry is null)
        {
            context.Response.StatusCode = 204;
            return;
        }
        var response = context.Response;
        response.StatusCode = 200;
        response.Headers.ETag = entry.ETag;
        if (entry.ExpiresAt is { } expires)
        {
            response.Headers["metadata.ttlExpireTime"] = expires.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        }
        response.ContentType = entry.ContentType ?? "application/json";
        response.ContentLength = entry.Value.Length;
        await response.WriteInSlicesAsync(entry.Value, context.RequestAborted);
    }

    private async Task SaveState(HttpContext context)
    {
        var tenant = context.Tenant();
        using var json = await context.ReadJsonAsync();
        var items = new List<StateSaveItem>();
        if (json is not null)
        {
            if (json.RootElement.ValueKind != JsonValueKind.Array)
            {
                throw Errors.Malformed("the body must be a JSON array of state items");
            }
            foreach (var element in json.RootElement.EnumerateArray())
            {
                items.Add(ParseSaveItem(element));
            }
        }
        await stateApi.SaveAsync(tenant, context.RouteValue("storeName"), items, context.RequestAborted);
        context.Response.StatusCode = 204;
    }

    private static StateSaveItem ParseSaveItem(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw Errors.Malformed("each state item must be an object with key and value");
        }
        var key = element.GetString("key");
        if (string.IsNullOrEmpty(key))
        {
            throw Errors.Malformed("state item without a key");
        }
        var value = element.Get("value");
        var bytes = value.ValueKind == JsonValueKind.Undefined ? [] : JsonMarshal.GetRawUtf8Value(value).ToArray();
        var options = element.Get("options");
        var concurrency = StateApi.ParseConcurrency(options.GetString("concurrency"));
        var etag = element.Get("etag");
        var etagText = etag.ValueKind switch
        {
            JsonValueKind.String => etag.GetString(),
            JsonValueKind.Number => etag.GetRawText(),
            _ => null,
        };
        var metadata = HttpRequestReader.StringMap(element.Get("metadata"), "metadata");
        return new StateSaveItem(key, bytes, etagText, concurrency, metadata, metadata?.GetValueOrDefault("contentType"));
    }

    private async Task DeleteState(HttpContext context)
    {
        var tenant = context.Tenant();
        var etag = context.Request.Headers.IfMatch.ToString();
        var concurrency = StateApi.ParseConcurrency(context.Request.Query["concurrency"].ToString());
        await stateApi.DeleteAsync(tenant, context.RouteValue("storeName"), context.RouteValue("key"), etag, concurrency, context.RequestAborted);
        context.Response.StatusCode = 204;
    }

    private async Task BulkGetState(HttpContext context)
    {
        var tenant = context.Tenant();
        using var json = await context.ReadJsonAsync();
        var root = json?.RootElement ?? default;
        var keysElement = root.Get("keys");
        if (keysElement.ValueKind != JsonValueKind.Array)
        {
            throw Errors.Malformed("the body must be {\"keys\": [...]}");
        }
        var keys = keysElement.EnumerateArray().Select(k => k.ValueKind == JsonValueKind.String ? k.GetString()! : throw Errors.Malformed("keys must be strings")).ToList();
        var parallelism = root.Get("parallelism") is { ValueKind: JsonValueKind.Number } p && p.TryGetInt32(out var n) ? n : 10;
        var memory = context.Memory();
        var results = await stateApi.GetBulkAsync(tenant, context.RouteValue("storeName"), keys, parallelism, memory, context.RequestAborted);

        // Built whole under the budget, then sent: a refusal half-way is a clean 413/429, not a cut 200.
        var buffer = new ChargedBufferWriter(memory, "the bulk get's answer");
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            foreach (var item in results)
            {
                writer.WriteStartObject();
                writer.WriteString("key", item.Key);
                if (item.Entry is { } entry)
                {
                    writer.WritePropertyName("data");
                    WriteData(writer, entry.Value.Span, memory);
                    writer.WriteString("etag", entry.ETag);
                }
                if (item.Error is not null)
                {
                    writer.WriteString("error", item.Error);
                }
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
        }
        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/json";
        await buffer.WriteToAsync(context.Response, context.RequestAborted);
    }

    /// <summary>Stored JSON is embedded as JSON; anything else as a string.</summary>
    internal static void WriteData(Utf8JsonWriter writer, ReadOnlySpan<byte> data, RequestMemory? memory = null)
    {
        var reader = new Utf8JsonReader(data);
        var valid = false;
        try
        {
            valid = reader.Read() && reader.TrySkip() && !reader.Read();
        }
        catch (JsonException)
        {
        }
        if (valid)
        {
            writer.WriteRawValue(data, skipInputValidation: true);
        }
        else
        {
            // The value as a string for a moment: two bytes a character.
            memory.Charge(2L * data.Length, "the bulk get's answer");
            writer.WriteStringValue(Encoding.UTF8.GetString(data));
            memory?.Release(2L * data.Length);
        }
    }

    private async Task Transaction(HttpContext context)
    {
        var tenant = context.Tenant();
        using var json = await context.ReadJsonAsync();
        var operations = json?.RootElement.Get("operations") ?? default;
        if (operations.ValueKind != JsonValueKind.Array)
        {
            throw Errors.Malformed("the body must be {\"operations\": [...]}");
        }
        var list = new List<StateTransactionItem>();
        foreach (var operation in operations.EnumerateArray())
        {
            var kind = operation.GetString("operation");
            var request = ParseSaveItem(operation.Get("request"));
            list.Add(kind switch
            {
                "upsert" => new StateTransactionItem(false, request),
                "delete" => new StateTransactionItem(true, request),
                _ => throw new DaprApiException(400, "ERR_NOT_SUPPORTED_STATE_OPERATION", $"operation type {kind} not supported"),
            });
        }
        await stateApi.TransactAsync(tenant, context.RouteValue("storeName"), list, context.RequestAborted);
        context.Response.StatusCode = 204;
    }

    private Task QueryState(HttpContext context)
    {
        var store = stateApi.GetStore(context.Tenant(), context.RouteValue("storeName"));
        _ = store;
        // No embedded or backend store supports queries: asking one is the caller's error (Dapr answers 500 here).
        throw new DaprApiException(400, "ERR_STATE_QUERY", $"state store {context.RouteValue("storeName")} does not support querying");
    }

    // ---- publish

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

    // ---- bindings

    private async Task InvokeBinding(HttpContext context)
    {
        var tenant = context.Tenant();
        using var json = await context.ReadJsonAsync();
        var root = json?.RootElement ?? default;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw Errors.Malformed("the body must be {\"data\", \"metadata\", \"operation\"}");
        }
        var dataElement = root.Get("data");
        byte[] data = dataElement.ValueKind switch
        {
            JsonValueKind.Undefined or JsonValueKind.Null => [],
            JsonValueKind.String => Encoding.UTF8.GetBytes(dataElement.GetString()!),
            _ => JsonMarshal.GetRawUtf8Value(dataElement).ToArray(),
        };
        var metadata = context.QueryMetadata(HttpRequestReader.StringMap(root.Get("metadata"), "metadata"));
        var request = new BindingRequest(root.GetString("operation") ?? "", data, metadata);
        var response = await bindingApi.InvokeAsync(tenant, context.RouteValue("name"), request, context.RequestAborted);
        foreach (var (key, value) in response.Metadata)
        {
            var header = $"Metadata.{key}";
            if (IsValidHeaderName(header) && !value.Any(char.IsControl))
            {
                context.Response.Headers[header] = value;
            }
        }
        if (response.Data.Length == 0)
        {
            context.Response.StatusCode = 204;
            return;
        }
        context.Response.StatusCode = 200;
        if (response.ContentType is not null)
        {
            context.Response.ContentType = response.ContentType;
        }
        await context.Response.Body.WriteAsync(response.Data, context.RequestAborted);
    }

    private static bool IsValidHeaderName(string name) => name.All(c => c > 32 && c < 127 && c != ':' && c != '(' && c != ')' && c != ',' && c != '"');

    // ---- secrets

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

    // ---- metadata

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

    private static Task WriteJsonAsync(HttpContext context, int status, ReadOnlyMemory<byte> json)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = json.Length;
        return context.Response.Body.WriteAsync(json, context.RequestAborted).AsTask();
    }
}
