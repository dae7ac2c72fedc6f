using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Http;

internal static class HttpRequestReader
{
    public static TenantContext Tenant(this HttpContext context) =>
        context.Features.Get<TenantContext>() ?? throw new InvalidOperationException("no tenant: admission did not run");

    public static string RouteValue(this HttpContext context, string name) =>
        context.Request.RouteValues[name] as string ?? "";

    /// <summary>The whole body (already bounded by the tenant's body limit).</summary>
    public static async ValueTask<byte[]> ReadBodyAsync(this HttpContext context)
    {
        var reader = context.Request.BodyReader;
        while (true)
        {
            var result = await reader.ReadAsync(context.RequestAborted).ConfigureAwait(false);
            if (result.IsCompleted)
            {
                var bytes = result.Buffer.ToArray();
                reader.AdvanceTo(result.Buffer.End);
                return bytes;
            }
            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    public static async ValueTask<JsonDocument?> ReadJsonAsync(this HttpContext context)
    {
        var body = await context.ReadBodyAsync().ConfigureAwait(false);
        if (body.Length == 0)
        {
            return null;
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = MaxJsonDepth });
        }
        catch (JsonException ex)
        {
            throw Errors.Malformed($"the request body is not valid JSON: {ex.Message}");
        }
        if (!HasValidText(body))
        {
            document.Dispose();
            throw Errors.Malformed("the request body has a string that is not valid UTF-8 or has an unpaired surrogate escape");
        }
        return document;
    }

    private const int MaxJsonDepth = 64;

    /// <summary>
    /// Whether every string and property name of <paramref name="json"/> (already parsed) can be read as text: the
    /// parser accepts invalid UTF-8 bytes and unpaired <c>\uD800</c> escapes inside strings, and reading such a string
    /// later throws. Only escaped strings are decoded here.
    /// </summary>
    private static bool HasValidText(byte[] json)
    {
        if (!System.Text.Unicode.Utf8.IsValid(json))
        {
            return false;
        }
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = MaxJsonDepth });
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType is JsonTokenType.String or JsonTokenType.PropertyName && reader.ValueIsEscaped)
                {
                    _ = reader.GetString();
                }
            }
        }
        catch (InvalidOperationException)
        {
            return false;
        }
        return true;
    }

    /// <summary>Query parameters <c>metadata.X=v</c> as metadata X.</summary>
    public static Dictionary<string, string> QueryMetadata(this HttpContext context, IReadOnlyDictionary<string, string>? fromBody = null)
    {
        var result = fromBody is null ? new Dictionary<string, string>(StringComparer.Ordinal) : new Dictionary<string, string>(fromBody, StringComparer.Ordinal);
        foreach (var (key, value) in context.Request.Query)
        {
            if (key.StartsWith("metadata.", StringComparison.Ordinal) && key.Length > 9)
            {
                result[key[9..]] = value.ToString();
            }
        }
        return result;
    }

    public static Dictionary<string, string>? StringMap(JsonElement element, string what)
    {
        if (element.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
        {
            return null;
        }
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw Errors.Malformed($"{what} must be an object of strings");
        }
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in element.EnumerateObject())
        {
            result[property.Name] = property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString()! : property.Value.GetRawText();
        }
        return result;
    }

    public static JsonElement Get(this JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) ? value : default;

    public static string? GetString(this JsonElement element, string name)
    {
        var value = element.Get(name);
        return value.ValueKind switch
        {
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Undefined or JsonValueKind.Null => null,
            _ => value.GetRawText(),
        };
    }
}
