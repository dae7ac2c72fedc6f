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

/// <summary>The handlers of the Dapr HTTP API: routes, health and shared writers; each building block's handlers are in their own file.</summary>
internal sealed partial class DaprHttpHandlers(
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

    private static Task WriteJsonAsync(HttpContext context, int status, ReadOnlyMemory<byte> json)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = json.Length;
        return context.Response.Body.WriteAsync(json, context.RequestAborted).AsTask();
    }
}
