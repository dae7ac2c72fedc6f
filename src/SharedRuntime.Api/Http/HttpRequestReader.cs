using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using SharedRuntime.Admission;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Http;

internal static class HttpRequestReader
{
    public static TenantContext Tenant(this HttpContext context) =>
        context.Features.Get<TenantContext>() ?? throw new InvalidOperationException("no tenant: admission did not run");

    public static string RouteValue(this HttpContext context, string name) =>
        context.Request.RouteValues[name] as string ?? "";

    /// <summary>
    /// What this request holds of its tenant's memory budget, made on first use and given back when the request ends
    /// (by the admission middleware); null outside the tenant pipeline.
    /// </summary>
    public static RequestMemory? Memory(this HttpContext context)
    {
        var memory = context.Features.Get<RequestMemory>();
        if (memory is null && context.Features.Get<TenantContext>() is { } tenant)
        {
            memory = new RequestMemory(tenant.Memory, tenant.AppId);
            context.Features.Set(memory);
        }
        return memory;
    }

    /// <summary>
    /// The whole body (already bounded by the tenant's body limit), charged to the request's memory as it arrives:
    /// the bytes buffered while it is read, then the array returned, which stays charged until the request ends.
    /// </summary>
    public static async ValueTask<byte[]> ReadBodyAsync(this HttpContext context)
    {
        var memory = context.Memory();
        var reader = context.Request.BodyReader;
        // Charged as it arrives: a sender holds what it sent, not what it declared.
        long buffering = 0;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(context.RequestAborted).ConfigureAwait(false);
                var buffer = result.Buffer;
                try
                {
                    if (buffer.Length > buffering)
                    {
                        memory.Charge(buffer.Length - buffering, "the request body");
                        buffering = buffer.Length;
                    }
                    if (result.IsCompleted)
                    {
                        memory.Charge(buffer.Length, "the request body");
                        var bytes = buffer.ToArray();
                        reader.AdvanceTo(buffer.End);
                        return bytes;
                    }
                }
                catch (DaprApiException)
                {
                    reader.AdvanceTo(buffer.Start, buffer.End);
                    throw;
                }
                reader.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        finally
        {
            memory?.Release(buffering);
        }
    }

    public static async ValueTask<JsonDocument?> ReadJsonAsync(this HttpContext context)
    {
        var body = await context.ReadBodyAsync().ConfigureAwait(false);
        if (body.Length == 0)
        {
            return null;
        }
        // The parsed document's index of the body's tokens, and the values taken out of it, cost about the body again.
        context.Memory().Charge(body.Length, "the parsed request body");
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
    /// later throws. Only escaped strings are decoded here, and only when the body has a <c>\u</c> escape at all: the
    /// usual body costs one vectorised UTF-8 check and no second parse.
    /// </summary>
    private static bool HasValidText(byte[] json)
    {
        if (!System.Text.Unicode.Utf8.IsValid(json))
        {
            return false;
        }
        if (json.AsSpan().IndexOf("\\u"u8) < 0)
        {
            return true;
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

    /// <summary>
    /// Writes <paramref name="data"/> in slices of 64 KiB, each awaited, so the server's output buffer holds a slice at
    /// a time instead of a copy of the whole answer.
    /// </summary>
    public static async Task WriteInSlicesAsync(this HttpResponse response, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        const int Slice = 64 * 1024;
        for (var offset = 0; offset < data.Length; offset += Slice)
        {
            await response.Body.WriteAsync(data.Slice(offset, Math.Min(Slice, data.Length - offset)), cancellationToken).ConfigureAwait(false);
        }
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
