using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.Connections.Features;
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
/// component. What the request held of its tenant's memory budget is given back when it ends. A Dapr error is logged,
/// counted and labelled here the same way whichever transport answered it (gRPC leaves it on the request).
/// A refusal by a tenant limit costs as little as the runtime can make it: no body is read, the rate-limit answer is
/// serialized once per tenant, refusals are logged as one line per tenant, reason and interval, and a tenant that keeps
/// sending inside its announced Retry-After is pushed back (<see cref="Pushback"/>). A tenant over its fair share of a
/// saturated runtime waits for its turn at its capped rate rather than being refused, when that turn is near.
/// </summary>
internal sealed class TenantAdmissionMiddleware(
    RequestDelegate next,
    RuntimeConfiguration configuration,
    ListenerPorts ports,
    RuntimeMetrics metrics,
    TenantCpuMetrics tenantCpu,
    RuntimeTracing tracing,
    IServiceProvider services,
    AppChannel.SubscriptionDiscovery discovery,
    Pushback pushback,
    ILogger<TenantAdmissionMiddleware> logger)
{
    public const string TokenHeader = "dapr-api-token";

    /// <summary>A tenant's refusals of one reason are logged as at most one line per interval, with their count.</summary>
    internal static readonly TimeSpan RefusalLogInterval = TimeSpan.FromSeconds(10);

    private static readonly string[] SecondsText = [.. Enumerable.Range(0, 121).Select(i => i.ToString(CultureInfo.InvariantCulture))];

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
            if (api is { Api: "healthz" } && context.Request.Headers.ContainsKey(TokenHeader) &&
                configuration.Current.FindByToken(context.Request.Headers[TokenHeader].ToString()) is { } waiting)
            {
                // An SDK waiting for its runtime at start-up: the app is up, and may be a new version.
                discovery.Seen(waiting, healthCheck: true);
            }
            return next(context);
        }

        var start = Stopwatch.GetTimestamp();
        var token = context.Request.Headers[TokenHeader].ToString();
        var known = configuration.Current.FindByToken(token);
        if (known is null && configuration.ProjectedTokens.Enabled && ProjectedTokens.LooksLikeJwt(token))
        {
            // Not a tenant's token but maybe a projected ServiceAccount token: only this path waits on a review.
            return AdmitProjectedAsync(context, token, api, start);
        }
        // A token bound to its pods (spec.identity) counts only from one of their addresses.
        var tenant = configuration.Pods.Admit(known, context.Connection.RemoteIpAddress);
        if (tenant is null)
        {
            ApiLog.Unauthenticated(logger, context.Request.Path.Value ?? "");
            return DaprErrorWriter.WriteAsync(context, new DaprApiException(401, "ERR_TENANT_UNAUTHENTICATED",
                "missing or unknown dapr-api-token: every request names its app with the token of a configured Tenant"));
        }
        return Admit(context, tenant, api, start);
    }

    /// <summary>
    /// A request whose token may be a projected ServiceAccount token (<see cref="ProjectedTokens"/>): reviewed (or its
    /// cached verdict read), then admitted as its Tenant's, or refused as an unknown token is (503 when the API server
    /// could not be asked).
    /// </summary>
    private async Task AdmitProjectedAsync(HttpContext context, string token, ApiEndpointMetadata? api, long start)
    {
        var (tenant, refusal) = await configuration.ProjectedTokens.ResolveAsync(token, context.Connection.RemoteIpAddress, configuration.Current, configuration.Pods).ConfigureAwait(false);
        if (tenant is not null)
        {
            await Admit(context, tenant, api, start).ConfigureAwait(false);
            return;
        }
        ApiLog.Unauthenticated(logger, context.Request.Path.Value ?? "");
        await DaprErrorWriter.WriteAsync(context, refusal switch
        {
            ProjectedTokenRefusal.Unavailable => new DaprApiException(503, "ERR_TOKEN_REVIEW_UNAVAILABLE",
                "the ServiceAccount token in dapr-api-token could not be reviewed with the Kubernetes API server; try again") { RetryAfterSeconds = 1 },
            ProjectedTokenRefusal.Throttled => new DaprApiException(401, "ERR_TENANT_UNAUTHENTICATED",
                "unknown dapr-api-token: too many unknown tokens from this address to review them all; it was not reviewed"),
            _ => new DaprApiException(401, "ERR_TENANT_UNAUTHENTICATED",
                "missing or unknown dapr-api-token: every request names its app with the token of a configured Tenant, or with a ServiceAccount token " +
                $"for audience {ProjectedTokens.Audience} of the service account one Tenant of its namespace names in spec.identity"),
        }).ConfigureAwait(false);
    }

    /// <summary>The request of a resolved tenant, from its body limit on.</summary>
    private Task Admit(HttpContext context, TenantContext tenant, ApiEndpointMetadata? api, long start)
    {
        discovery.Seen(tenant, healthCheck: false);
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

        var connection = tenant.Admission.Share.Counting ? ConnectionTurnOf(context) : null;
        var admitted = tenant.Admission.TryEnter(connection, pushback.Options.MaxDelay, out var retryAfter, out var wait);
        if (wait > TimeSpan.Zero)
        {
            if (pushback.TryHold(tenant.Admission.Refusals))
            {
                return WaitForTurnAsync(context, tenant, apiName, start, wait);
            }
            // No place to wait in: refused, as without push-back (the turn it took is lost to the tenant).
            return RefuseRateLimited(context, tenant, apiName, start, wait, RejectionReason.FairShare);
        }
        return Enter(context, tenant, apiName, start, admitted, retryAfter);
    }

    /// <summary>What the admission answered: run the request, refuse it, or wait in the bulkhead's line.</summary>
    private Task Enter(HttpContext context, TenantContext tenant, string apiName, long start, RejectionReason admitted, TimeSpan retryAfter)
    {
        switch (admitted)
        {
            case RejectionReason.None:
                return RunAsync(context, tenant, apiName, start);
            case RejectionReason.RateLimited or RejectionReason.FairShare:
                return RefuseRateLimited(context, tenant, apiName, start, retryAfter, admitted);
            default:
                return WaitForSlotAsync(context, tenant, apiName, start);
        }
    }

    /// <summary>
    /// The tenant's last turn on this request's connection (HTTP/1.1) or pooled stream (HTTP/2), kept in its persistent
    /// state: asked for only while the fair share counts, so a connection holds one small object from the first saturated
    /// period on, and nothing before.
    /// </summary>
    private static ConnectionTurn? ConnectionTurnOf(HttpContext context)
    {
        if (context.Features.Get<IPersistentStateFeature>()?.State is not { } state)
        {
            return null;
        }
        if (state.TryGetValue(typeof(ConnectionTurn), out var kept) && kept is ConnectionTurn turn)
        {
            return turn;
        }
        turn = new ConnectionTurn();
        state[typeof(ConnectionTurn)] = turn;
        return turn;
    }

    /// <summary>
    /// Over the tenant's fair share of a saturated runtime, with its next turn at its capped rate close: the request
    /// waits for that turn (holding a push-back place, no thread), then meets the tenant's own limit and bulkhead. The
    /// connection reads nothing more meanwhile, so a flood waits in its client, and the tenant is served its cap exactly.
    /// </summary>
    private async Task WaitForTurnAsync(HttpContext context, TenantContext tenant, string apiName, long start, TimeSpan wait)
    {
        try
        {
            await Task.Delay(wait, pushback.Time, context.RequestAborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The client went away while waiting; nothing to answer.
            return;
        }
        finally
        {
            pushback.Release(tenant.Admission.Refusals);
        }
        var admitted = tenant.Admission.TryEnterLimits(out var retryAfter);
        await Enter(context, tenant, apiName, start, admitted, retryAfter).ConfigureAwait(false);
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
        var cpu = tenantCpu.Start(tenant.AppId);
        metrics.RequestStarted(tenant.AppId);
        context.Features.Set(tenant);
        var grpc = DaprErrorWriter.IsGrpc(context) && ports.ListenerOf(context.Connection.LocalPort) == Listener.DaprGrpc;
        var span = tracing.StartApi(context, tenant, apiName, grpc);
        try
        {
            if (tenant.Policy.Api is { } apiPolicy && DeniedApi(context, tenant, apiPolicy, grpc) is { } denied)
            {
                Failed(tenant, apiName, denied);
                await DaprErrorWriter.WriteAsync(context, denied).ConfigureAwait(false);
                return;
            }
            if (grpc)
            {
                // The gRPC service and its interceptor are singletons: taken from the root container, the call makes no
                // request scope.
                context.RequestServices = services;
                if (context.GetEndpoint()?.Metadata.GetMetadata<Grpc.GrpcProxy.EndpointMetadata>() is null && // a proxied stream is not waited for
                    await AdmitGrpcMessageAsync(context, tenant).ConfigureAwait(false) is { } refused)
                {
                    Failed(tenant, apiName, refused);
                    await DaprErrorWriter.WriteAsync(context, refused).ConfigureAwait(false);
                    return;
                }
            }
            await next(context).ConfigureAwait(false);
            if (grpc)
            {
                GrpcAnswered(context, tenant, apiName);
            }
        }
        catch (DaprApiException ex)
        {
            Failed(tenant, apiName, ex);
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
                    LogRefused(tenant, reason);
                }
                memory.Dispose();
            }
            tenant.Admission.Exit();
            var status = grpc ? GrpcOutcome(context) : context.Response.StatusCode;
            metrics.RequestFinished(tenant.AppId, apiName, status, start);
            tenantCpu.Stop(cpu);
            if (span is not null)
            {
                RuntimeTracing.EndApi(span, status);
            }
        }
    }

    /// <summary>
    /// The refusal of an API the tenant's Configuration does not allow (<c>api.allowed</c>/<c>api.denied</c>), or null.
    /// As in Dapr, where a denied API is not served at all: over HTTP the route is not found (404), over gRPC the method
    /// is UNIMPLEMENTED ("requested endpoint is not available").
    /// </summary>
    private static DaprApiException? DeniedApi(HttpContext context, TenantContext tenant, Policy.ApiAccessPolicy policy, bool grpc)
    {
        if (context.GetEndpoint() is not { } endpoint || endpoint.Metadata.GetMetadata<ApiEndpointMetadata>() is not { } api ||
            ApiEndpointIdentity.IsAllowed(policy, context, endpoint, api))
        {
            return null;
        }
        var name = ApiEndpointIdentity.Describe(endpoint);
        return grpc
            ? new DaprApiException(501, "ERR_API_NOT_ALLOWED", $"requested endpoint is not available: {name} is not allowed for app {tenant.AppId} by its Configuration")
            : new DaprApiException(404, "ERR_API_NOT_ALLOWED", $"no Dapr API at {context.Request.Method} {context.Request.Path}: {name} is not allowed for app {tenant.AppId} by its Configuration");
    }

    /// <summary>
    /// A Dapr error answered over either transport: logged, and a tenant bound a building block refused for (state
    /// quota, topics, locks, a full queue at an app, a store or a subscription) counted as a rejection with its reason.
    /// </summary>
    private void Failed(TenantContext tenant, string apiName, DaprApiException error)
    {
        if (RejectionReasons.Of(error.HttpStatus, error.ErrorCode) is var reason and not RejectionReason.None)
        {
            metrics.Rejected(tenant.AppId, reason);
            if (tenant.Admission.Refusals.Tally(reason, pushback.Time.GetTimestamp(), RefusalLogInterval, pushback.Time, out var count))
            {
                ApiLog.RefusedWithError(logger, tenant.AppId, count, reason.Label(), (int)RefusalLogInterval.TotalSeconds, apiName, error.HttpStatus, error.ErrorCode, error.Message);
            }
            return;
        }
        ApiLog.ApiError(logger, tenant.AppId, apiName, error.HttpStatus, error.ErrorCode, error.Message);
    }

    /// <summary>Counts a refusal; logs the count since the last line when one is due (<see cref="RefusalLogInterval"/>).</summary>
    private void LogRefused(TenantContext tenant, RejectionReason reason)
    {
        if (tenant.Admission.Refusals.Tally(reason, pushback.Time.GetTimestamp(), RefusalLogInterval, pushback.Time, out var count))
        {
            ApiLog.Refused(logger, tenant.AppId, count, reason.Label(), (int)RefusalLogInterval.TotalSeconds);
        }
    }

    /// <summary>
    /// After the gRPC service answered: a Dapr error it answered (left on the request by <c>DaprGrpcService.Methods</c>) is
    /// logged and counted as over HTTP; so is a Dapr error gRPC answered before the service ran (a message that is not
    /// valid protobuf), known by its error code trailer.
    /// </summary>
    private void GrpcAnswered(HttpContext context, TenantContext tenant, string apiName)
    {
        if (context.Features.Get<DaprApiException>() is { } error)
        {
            Failed(tenant, apiName, error);
        }
        else if (GrpcAnswer(context, DaprErrors.ErrorCodeTrailer) is { Length: > 0 } errorCode)
        {
            ApiLog.ApiError(logger, tenant.AppId, apiName, GrpcOutcome(context), errorCode, Uri.UnescapeDataString(GrpcAnswer(context, "grpc-message") ?? ""));
        }
    }

    /// <summary>
    /// The HTTP status a gRPC call's outcome stands for, as metrics label it, so one dashboard reads both transports:
    /// a Dapr error's own status (507, not the RESOURCE_EXHAUSTED it shares with 429), the app's status for an
    /// InvokeService the app refused, else the gRPC status mapped back by <see cref="DaprErrors"/> (OK is 200).
    /// </summary>
    internal static int GrpcOutcome(HttpContext context)
    {
        if (context.Features.Get<DaprApiException>() is { } error)
        {
            return error.HttpStatus;
        }
        if (int.TryParse(GrpcAnswer(context, DaprErrors.AppStatusTrailer), NumberStyles.None, CultureInfo.InvariantCulture, out var appStatus))
        {
            return appStatus;
        }
        if (int.TryParse(GrpcAnswer(context, "grpc-status"), NumberStyles.None, CultureInfo.InvariantCulture, out var grpcStatus))
        {
            return DaprErrors.HttpStatusOf((global::Grpc.Core.StatusCode)grpcStatus);
        }
        return context.Response.StatusCode;
    }

    /// <summary>A value of the gRPC answer's trailers, or of its headers for a trailers-only answer.</summary>
    private static string? GrpcAnswer(HttpContext context, string name)
    {
        var value = context.Response.Headers[name];
        if (value.Count == 0 && context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers is { } trailers)
        {
            value = trailers[name];
        }
        return value.Count == 0 ? null : value.ToString();
    }

    /// <summary>
    /// A gRPC call carries one request message: its length, read from the message's prefix before the message itself,
    /// is held to the tenant's body limit (RESOURCE_EXHAUSTED beyond) and charged to its memory budget (the message's
    /// bytes and the parsed message) before gRPC reads it. The refusal, if any, is returned rather than thrown.
    /// </summary>
    private async ValueTask<DaprApiException?> AdmitGrpcMessageAsync(HttpContext context, TenantContext tenant)
    {
        var length = await GrpcMessagePrefix.PeekLengthAsync(context.Request.BodyReader, context.RequestAborted).ConfigureAwait(false);
        var bodyLimit = tenant.Limits.MaxRequestBodyBytes;
        if (length > bodyLimit)
        {
            metrics.Rejected(tenant.AppId, RejectionReason.BodyTooLarge);
            return new DaprApiException(413, "ERR_TENANT_BODY_TOO_LARGE",
                $"gRPC message of {length} bytes exceeds the limit of {bodyLimit} bytes for app {tenant.AppId}");
        }
        // The message's bytes while they are received, and the parsed message (its bytes fields are copies).
        return context.Memory().ChargeOrRefuse(2 * length, "the gRPC request message");
    }

    private Task Reject(HttpContext context, TenantContext tenant, string apiName, long start, RejectionReason reason, int status, string code, string message, int? retryAfterSeconds)
    {
        metrics.Rejected(tenant.AppId, reason);
        metrics.Record(tenant.AppId, apiName, status, start);
        LogRefused(tenant, reason);
        return DaprErrorWriter.WriteAsync(context, new DaprApiException(status, code, message) { RetryAfterSeconds = retryAfterSeconds });
    }

    /// <summary>
    /// Over the rate limit: counted, tallied for the log, and answered 429 with a body serialized once per tenant. A
    /// refusal inside the Retry-After the tenant was last given is parked until that wait ends (bounded), so that its
    /// connection reads nothing more meanwhile.
    /// </summary>
    private Task RefuseRateLimited(HttpContext context, TenantContext tenant, string apiName, long start, TimeSpan retryAfter, RejectionReason reason)
    {
        var seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
        metrics.Rejected(tenant.AppId, reason);
        metrics.Record(tenant.AppId, apiName, 429, start);
        LogRefused(tenant, reason);
        var refusals = tenant.Admission.Refusals;
        var early = refusals.Refused(pushback.Time.GetTimestamp(), TimeSpan.FromSeconds(seconds), pushback.Time);
        if (early > TimeSpan.Zero && pushback.TryPark(refusals, early, out var delay))
        {
            return ParkThenRefuseAsync(context, tenant, seconds, delay, reason);
        }
        return WriteRateLimited(context, tenant, seconds, reason);
    }

    private async Task ParkThenRefuseAsync(HttpContext context, TenantContext tenant, int seconds, TimeSpan delay, RejectionReason reason)
    {
        try
        {
            await Task.Delay(delay, pushback.Time, context.RequestAborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The client went away while parked; nothing to answer.
            return;
        }
        finally
        {
            pushback.Release(tenant.Admission.Refusals);
        }
        await WriteRateLimited(context, tenant, seconds, reason).ConfigureAwait(false);
    }

    private static Task WriteRateLimited(HttpContext context, TenantContext tenant, int retryAfterSeconds, RejectionReason reason)
    {
        var fairShare = reason == RejectionReason.FairShare;
        if (DaprErrorWriter.IsGrpc(context))
        {
            return DaprErrorWriter.WriteAsync(context, new DaprApiException(429, "ERR_TENANT_RATE_LIMITED",
                fairShare ? FairShareMessage(tenant) : RateLimitedMessage(tenant)) { RetryAfterSeconds = retryAfterSeconds });
        }
        var body = fairShare
            ? tenant.Admission.Refusals.FairShareBody(tenant.AppId, tenant,
                static t => DaprErrorWriter.Serialize(new DaprApiException(429, "ERR_TENANT_RATE_LIMITED", FairShareMessage(t))))
            : tenant.Admission.Refusals.RateLimitedBody(tenant.AppId, tenant,
                static t => DaprErrorWriter.Serialize(new DaprApiException(429, "ERR_TENANT_RATE_LIMITED", RateLimitedMessage(t))));
        var response = context.Response;
        response.StatusCode = 429;
        response.ContentType = "application/json";
        response.Headers.RetryAfter = retryAfterSeconds < SecondsText.Length ? SecondsText[retryAfterSeconds] : retryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body, 0, body.Length, CancellationToken.None);
    }

    private static string RateLimitedMessage(TenantContext tenant) =>
        $"app {tenant.AppId} is over its rate limit of {tenant.Limits.RequestsPerSecond.ToString(CultureInfo.InvariantCulture)} requests per second (burst {tenant.Limits.Burst})";

    private static string FairShareMessage(TenantContext tenant) =>
        $"app {tenant.AppId} is within its rate limit but over its fair share of the runtime, which is saturated: " +
        "its concurrent requests are admitted at a share of its limit until the load drops";
}
