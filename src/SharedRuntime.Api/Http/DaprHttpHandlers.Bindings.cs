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

/// <summary>HTTP handlers of the Dapr API. Output bindings.</summary>
internal sealed partial class DaprHttpHandlers
{
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
}
