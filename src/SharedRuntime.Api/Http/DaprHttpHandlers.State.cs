using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.Admission;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Components;
using SharedRuntime.Diagnostics;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Http;

/// <summary>HTTP handlers of the Dapr API. State: get, save, delete, bulk get, transactions, query (refused).</summary>
internal sealed partial class DaprHttpHandlers
{
    /// <summary>Reached through <see cref="UseStateGetRoute"/> (values from the path) or through the router (route values).</summary>
    public async Task GetState(HttpContext context)
    {
        var tenant = context.Tenant();
        if (!TryMatchStateGet(context.Request.Path.Value, out var storeName, out var key))
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
            var request = operation.Get("request");
            list.Add(StateTransactionItem.Of(operation.GetString("operation"), request.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null ? null : ParseSaveItem(request)));
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

    // ---- the state GET's own route

    private static readonly string[] StateGetVersions = ["/v1.0/state/", "/v1.0-alpha1/state/"];

    /// <summary>
    /// The state GET, <c>GET /v1.0/state/{storeName}/{key}</c> (and <c>v1.0-alpha1</c>), recognised from the path before
    /// the router runs: its endpoint is set directly, so the router neither matches it nor builds a route-value dictionary
    /// for it (about 250 bytes a request). The endpoint carries the same handler and <see cref="ApiEndpointMetadata"/> as
    /// the routed one, so the tenant middleware treats it alike (listener check, admission, metrics). A path this does not
    /// recognise exactly (another method, an empty segment, a trailing slash) goes to the router as before. Call before
    /// <c>UseRouting</c>.
    /// </summary>
    public static IApplicationBuilder UseStateGetRoute(IApplicationBuilder app)
    {
        var handlers = ActivatorUtilities.CreateInstance<DaprHttpHandlers>(app.ApplicationServices);
        var endpoint = new Endpoint(handlers.GetState,
            new EndpointMetadataCollection(new ApiEndpointMetadata(Listener.DaprHttp, "state"), new HttpMethodMetadata(["GET"])),
            "HTTP: GET /v1.0/state/{storeName}/{key}");
        return app.Use(next => context =>
        {
            if (HttpMethods.IsGet(context.Request.Method) && IsStateGet(context.Request.Path.Value) && context.GetEndpoint() is null)
            {
                context.SetEndpoint(endpoint);
            }
            return next(context);
        });
    }

    /// <summary>
    /// Whether <paramref name="path"/> is <c>/v1.0/state/{storeName}/{key}</c> (the version and <c>state</c> in any case,
    /// as the router compares literals), both values non-empty and without a slash; the values are the path's own
    /// characters, as the router's are.
    /// </summary>
    internal static bool TryMatchStateGet(string? path, out string storeName, out string key)
    {
        if (!TryFindStateGet(path, out var store, out var keyStart))
        {
            storeName = key = "";
            return false;
        }
        storeName = path![store];
        key = path[keyStart..];
        return true;
    }

    private static bool IsStateGet(string? path) => TryFindStateGet(path, out _, out _);

    private static bool TryFindStateGet(string? path, out Range storeName, out int keyStart)
    {
        storeName = default;
        keyStart = 0;
        if (path is null)
        {
            return false;
        }
        foreach (var prefix in StateGetVersions)
        {
            if (!path.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            var rest = path.AsSpan(prefix.Length);
            var slash = rest.IndexOf('/');
            if (slash <= 0 || slash == rest.Length - 1 || rest[(slash + 1)..].Contains('/'))
            {
                return false;
            }
            storeName = new Range(prefix.Length, prefix.Length + slash);
            keyStart = prefix.Length + slash + 1;
            return true;
        }
        return false;
    }
}
