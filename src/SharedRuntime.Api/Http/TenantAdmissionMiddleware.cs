using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.Http;
using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using SharedRuntime.Admission;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Diagnostics;
using SharedRuntime.Metrics;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Http;

/// <summary>
/// The request path of every Dapr API call, HTTP and gRPC alike, in one place and in this order:
/// keep each listener's endpoints to its port -> resolve the tenant from <c>dapr-api-token</c> -> body limit ->
/// rate limit -> bulkhead -> (gRPC) the message's size and memory -> the building block. Rejections never reach a
/// component. What the request held of its tenant's memory budget is given back when it ends.
/// </summary>
public sealed class TenantAdmissionMiddleware(
    RequestDelegate next,
    RuntimeConfiguration configuration,
    ListenerPorts ports,
    RuntimeMetrics metrics,
    ILogger<TenantAdmissionMiddleware> logger)
{
    public const string TokenHeader = "dapr-api-token";

    public Task InvokeAsync(HttpContext context)
    {
        var endpoint = context.GetEndpoint();
        var api = endpoint?.Metadata.GetMetadata<ApiEndpointMetadata>();
        var listener = ports.ListenerOf(context.Connection.LocalPort);
        if (api is not null && listener != api.Listener)
        {
            // An endpoint of another listener: as if it did not exist on this port.
            context.SetEndpoint(null);
            api = null;
        }
        if (listener is Listener.Metrics || api is { Anonymous: true })
        {
            return next(context);
        }

        var start = Stopwatch.GetTimestamp();
        var tenant = configuration.Current.FindByToken(context.Request.Headers[TokenHeader].ToString());
        if (tenant is null)
        {
            ApiLog.Unauthenticated(logger, context.Request.Path.Value ?? "");
            return DaprErrorWriter.WriteAsync(context, new DaprApiException(401, "ERR_TENANT_UNAUTHENTICATED",
                "missing or unknown dapr-api-token: every request names its app with the token of a configured Tenant"));
        }

        var apiName = api?.Api ?? "unknown";
        var bodyLimit = tenant.Limits.MaxRequestBodyBytes;
        if (context.Request.ContentLength > bodyLimit)
        {
            return Reject(context, tenant, apiName, start, RejectionReason.BodyTooLarge, 413, "ERR_TENANT_BODY_TOO_LARGE",
                $"request body of {context.Request.ContentLength} bytes exceeds the limit of {bodyLimit} bytes for app {tenant.AppId}", null);
        }
        var sizeFeature = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (sizeFeature is { IsReadOnly: false })
        {
            sizeFeature.MaxRequestBodySize = bodyLimit;
        }

        switch (tenant.Admission.TryEnter(out var retryAfter))
        {
            case RejectionReason.None:
                return RunAsync(context, tenant, apiName, start);
            case RejectionReason.RateLimited:
                return Reject(context, tenant, apiName, start, RejectionReason.RateLimited, 429, "ERR_TENANT_RATE_LIMITED",
                    $"app {tenant.AppId} is over its rate limit of {tenant.Limits.RequestsPerSecond.ToString(CultureInfo.InvariantCulture)} requests per second (burst {tenant.Limits.Burst})",
                    Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)));
            default:
                return WaitForSlotAsync(context, tenant, apiName, start);
        }
    }

    private async Task WaitForSlotAsync(HttpContext context, TenantContext tenant, string apiName, long start)
    {
        if (!await tenant.Admission.EnterAsync(context.RequestAborted).ConfigureAwait(false))
        {
            await Reject(context, tenant, apiName, start, RejectionReason.BulkheadFull, 429, "ERR_TENANT_BULKHEAD_FULL",
                $"app {tenant.AppId} has {tenant.Limits.MaxConcurrency} requests in flight and {tenant.Limits.MaxQueue} waiting, its limit",
                1).ConfigureAwait(false);
            return;
        }
        await RunAsync(context, tenant, apiName, start).ConfigureAwait(false);
    }

    private async Task RunAsync(HttpContext context, TenantContext tenant, string apiName, long start)
    {
        metrics.RequestStarted(tenant.AppId);
        context.Features.Set(tenant);
        try
        {
            if (DaprErrorWriter.IsGrpc(context) && ports.ListenerOf(context.Connection.LocalPort) == Listener.DaprGrpc)
            {
                await AdmitGrpcMessageAsync(context, tenant).ConfigureAwait(false);
            }
            await next(context).ConfigureAwait(false);
        }
        catch (DaprApiException ex)
        {
            ApiLog.ApiError(logger, tenant.AppId, apiName, ex.HttpStatus, ex.ErrorCode, ex.Message);
            if (ex.HttpStatus == 507)
            {
                metrics.Rejected(tenant.AppId, RejectionReason.QuotaExceeded);
            }
            await DaprErrorWriter.WriteAsync(context, ex).ConfigureAwait(false);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            metrics.Rejected(tenant.AppId, RejectionReason.BodyTooLarge);
            await DaprErrorWriter.WriteAsync(context, new DaprApiException(413, "ERR_TENANT_BODY_TOO_LARGE",
                $"request body exceeds the limit of {tenant.Limits.MaxRequestBodyBytes} bytes for app {tenant.AppId}")).ConfigureAwait(false);
        }
        catch (BadHttpRequestException ex)
        {
            await DaprErrorWriter.WriteAsync(context, new DaprApiException(ex.StatusCode, "ERR_MALFORMED_REQUEST", ex.Message)).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; nothing to answer.
        }
        catch (Exception ex)
        {
            ApiLog.RequestFailed(logger, ex, tenant.AppId, context.Request.Method, context.Request.Path.Value ?? "");
            await DaprErrorWriter.WriteAsync(context, new DaprApiException(500, "ERR_INTERNAL", $"internal error: {ex.Message}")).ConfigureAwait(false);
        }
        finally
        {
            if (context.Features.Get<RequestMemory>() is { } memory)
            {
                if (memory.Refusal != MemoryCharge.Charged)
                {
                    var reason = memory.Refusal == MemoryCharge.NodeFull ? RejectionReason.NodeMemory : RejectionReason.MemoryBudget;
                    metrics.Rejected(tenant.AppId, reason);
                    ApiLog.Rejected(logger, tenant.AppId, reason.Label());
                }
                memory.Dispose();
            }
            tenant.Admission.Exit();
            metrics.RequestFinished(tenant.AppId, apiName, context.Response.StatusCode, start);
        }
    }

    /// <summary>
    /// A gRPC call carries one request message: its length, read from the message's prefix before the message itself,
    /// is held to the tenant's body limit (RESOURCE_EXHAUSTED beyond) and charged to its memory budget (the message's
    /// bytes and the parsed message) before gRPC reads it.
    /// </summary>
    private async ValueTask AdmitGrpcMessageAsync(HttpContext context, TenantContext tenant)
    {
        var length = await GrpcMessagePrefix.PeekLengthAsync(context.Request.BodyReader, context.RequestAborted).ConfigureAwait(false);
        var bodyLimit = tenant.Limits.MaxRequestBodyBytes;
        if (length > bodyLimit)
        {
            metrics.Rejected(tenant.AppId, RejectionReason.BodyTooLarge);
            throw new DaprApiException(413, "ERR_TENANT_BODY_TOO_LARGE",
                $"gRPC message of {length} bytes exceeds the limit of {bodyLimit} bytes for app {tenant.AppId}");
        }
        // The message's bytes while they are received, and the parsed message (its bytes fields are copies).
        context.Memory().Charge(2 * length, "the gRPC request message");
    }

    private Task Reject(HttpContext context, TenantContext tenant, string apiName, long start, RejectionReason reason, int status, string code, string message, int? retryAfterSeconds)
    {
        metrics.Rejected(tenant.AppId, reason);
        metrics.Record(tenant.AppId, apiName, status, start);
        ApiLog.Rejected(logger, tenant.AppId, reason.Label());
        return DaprErrorWriter.WriteAsync(context, new DaprApiException(status, code, message) { RetryAfterSeconds = retryAfterSeconds });
    }
}

/// <summary>The 5-byte prefix of a gRPC message: a compression flag and the message's length (big-endian).</summary>
internal static class GrpcMessagePrefix
{
    private const int Size = 5;

    /// <summary>
    /// The length of the first message of the request body, read without consuming anything, so gRPC then reads the
    /// body from its start; 0 when the body ends before a whole prefix.
    /// </summary>
    public static async ValueTask<long> PeekLengthAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (buffer.Length >= Size)
            {
                var length = Length(buffer);
                reader.AdvanceTo(buffer.Start);
                return length;
            }
            if (result.IsCompleted || result.IsCanceled)
            {
                reader.AdvanceTo(buffer.Start);
                return 0;
            }
            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static uint Length(ReadOnlySequence<byte> buffer)
    {
        Span<byte> prefix = stackalloc byte[Size];
        buffer.Slice(0, Size).CopyTo(prefix);
        return BinaryPrimitives.ReadUInt32BigEndian(prefix[1..]);
    }
}
