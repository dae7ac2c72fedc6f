using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Primitives;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Timeout;
using SharedRuntime.Admission;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Diagnostics;
using SharedRuntime.Tenancy;

namespace SharedRuntime.AppChannel;

/// <summary>One invocation as the runtime forwards it, whichever API it came in on.</summary>
public sealed class InvocationRequest
{
    public required string TargetAppId { get; init; }

    /// <summary>The method path below the app's endpoint, without a leading slash, not yet cleaned.</summary>
    public required string Method { get; init; }

    public required string Verb { get; init; }

    /// <summary>Query string with its leading '?', or empty.</summary>
    public string Query { get; init; } = "";

    /// <summary>Headers to pass on; the runtime drops hop-by-hop and dapr-* headers itself.</summary>
    public IEnumerable<KeyValuePair<string, StringValues>> Headers { get; init; } = [];

    /// <summary>A body held in memory (may be sent again on retry).</summary>
    public ReadOnlyMemory<byte>? Body { get; init; }

    /// <summary>A body read while it is sent: never buffered, so such a call is not retried.</summary>
    public Stream? BodyStream { get; init; }

    public string? ContentType { get; init; }

    public string? ClientAddress { get; init; }

    public string? Host { get; init; }

    public string Scheme { get; init; } = "http";
}

/// <summary>
/// Service invocation: checks the target's access control, takes a slot in the target app's channel, and sends the
/// call through the caller's resiliency pipeline for that target. The caller's token never reaches the target;
/// <c>dapr-caller-app-id</c> is always the runtime's own knowledge of the caller.
/// </summary>
public sealed class ServiceInvocation(RuntimeConfiguration configuration, AppChannels channels, ResiliencyPolicies policies, ILogger<ServiceInvocation> logger)
{
    /// <summary>Bodies up to this size are held in memory when a retry policy could send them again; larger ones stream once.</summary>
    public const long MaxBufferedBody = 1024 * 1024;

    private static readonly HashSet<string> DroppedHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Expect",
        "dapr-api-token", "dapr-app-id", "dapr-caller-app-id", "dapr-callee-app-id", "dapr-caller-namespace",
        "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
    };

    private static readonly HashSet<string> DroppedResponseHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
    };

    /// <summary>Whether a response header may be passed back to the caller.</summary>
    public static bool PassesBack(string header) => !DroppedResponseHeaders.Contains(header);

    /// <summary>
    /// The pipeline that will carry a call from <paramref name="caller"/> to <paramref name="targetAppId"/>: tells the
    /// HTTP API whether buffering the body for retries could help.
    /// </summary>
    public bool MayRetry(TenantContext caller, string targetAppId) => policies.ForApp(caller.AppId, targetAppId) != ResiliencePipeline<AppCallResult>.Empty;

    /// <summary>
    /// Forwards <paramref name="request"/> and returns the app's answer (headers read, body not yet), which the caller
    /// disposes. Throws <see cref="DaprApiException"/> when the call is refused or cannot be made.
    /// </summary>
    public async Task<HttpResponseMessage> InvokeAsync(TenantContext caller, InvocationRequest request, CancellationToken cancellationToken)
    {
        var snapshot = configuration.Current;
        if (!snapshot.Tenants.TryGetValue(request.TargetAppId, out var target))
        {
            throw new DaprApiException(404, "ERR_DIRECT_INVOKE", $"failed to invoke, id: {request.TargetAppId}: no app with this id is served here");
        }
        var channel = channels.Find(target.AppId)
            ?? throw new DaprApiException(404, "ERR_DIRECT_INVOKE", $"failed to invoke, id: {target.AppId}: the app has no appEndpoint");
        var method = CleanMethod(request.Method);
        if (target.Config.ConfigName is { } configName &&
            snapshot.Resources.Configurations.FirstOrDefault(c => c.Name == configName)?.AccessControl is { } acl &&
            !acl.IsAllowed(caller.AppId, method, request.Verb))
        {
            InvocationLog.Denied(logger, caller.AppId, target.AppId, request.Verb, method);
            throw new DaprApiException(403, "ERR_DIRECT_INVOKE",
                $"access control policy has denied access to id: {target.AppId} operation: {method} verb: {request.Verb} for caller {caller.AppId}");
        }

        try
        {
            // One line per calling app: a caller flooding the target waits behind its own calls, not others'.
            await channel.Calls.EnterAsync(caller.AppId, channel.Config.MaxQueue, cancellationToken).ConfigureAwait(false);
        }
        catch (FairQueueFullException)
        {
            throw new DaprApiException(429, "ERR_TENANT_APP_BUSY", new AppBusyException(target.AppId, caller.AppId, channel.Config.MaxConcurrency, channel.Config.MaxQueue).Message)
            {
                RetryAfterSeconds = 1,
            };
        }
        try
        {
            var pipeline = policies.ForApp(caller.AppId, target.AppId);
            var traceparent = TraceParent(request.Headers);
            if (pipeline == ResiliencePipeline<AppCallResult>.Empty)
            {
                // No policy: one attempt, without a resilience context.
                var once = await SendOnceAsync(channel, request, method, caller.AppId, traceparent, cancellationToken).ConfigureAwait(false);
                return once.Response!;
            }
            var context = ResilienceContextPool.Shared.Get(cancellationToken);
            context.Properties.Set(ResiliencyPolicies.Streamed, request.BodyStream is not null);
            try
            {
                var result = await pipeline.ExecuteAsync(
                    static (ctx, state) => SendOnceAsync(state.channel, state.request, state.method, state.AppId, state.traceparent, ctx.CancellationToken),
                    context,
                    (channel, request, method, caller.AppId, traceparent)).ConfigureAwait(false);
                return result.Response!;
            }
            finally
            {
                ResilienceContextPool.Shared.Return(context);
            }
        }
        catch (Exception ex) when (ex is CircuitOpenException or TimeoutException or TimeoutRejectedException or HttpRequestException)
        {
            InvocationLog.Failed(logger, caller.AppId, target.AppId, method, ex.Message);
            throw new DaprApiException(500, "ERR_DIRECT_INVOKE", $"failed to invoke, id: {target.AppId}, err: {ex.Message}", ex)
            {
                GrpcOverride = ex is CircuitOpenException ? 14 : ex is HttpRequestException ? 14 : 4,
            };
        }
        finally
        {
            channel.Calls.Exit();
        }
    }

    private static ValueTask<AppCallResult> SendOnceAsync(AppChannel channel, InvocationRequest request, string method, string callerAppId, string traceparent, CancellationToken cancellationToken) =>
        channel.SendAsync(Build(channel, request, method, callerAppId, traceparent), static (response, _) => ValueTask.FromResult(new AppCallResult
        {
            Response = response,
            StatusCode = (int)response.StatusCode,
            Failed = (int)response.StatusCode >= 500,
        }), cancellationToken);

    private static HttpRequestMessage Build(AppChannel channel, InvocationRequest request, string method, string callerAppId, string traceparent)
    {
        var message = new HttpRequestMessage(new HttpMethod(request.Verb), new Uri($"{channel.Endpoint.OriginalString}/{method}{request.Query}", UriKind.Absolute));
        if (request.Body is { } body)
        {
            message.Content = new ReadOnlyMemoryContent(body);
        }
        else if (request.BodyStream is { } stream)
        {
            message.Content = new StreamContent(stream);
        }
        foreach (var (name, values) in request.Headers)
        {
            if (DroppedHeaders.Contains(name) || name.Equals("traceparent", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            if (values.Count == 1)
            {
                if (!message.Headers.TryAddWithoutValidation(name, values[0]))
                {
                    message.Content?.Headers.TryAddWithoutValidation(name, values[0]);
                }
            }
            else if (!message.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values))
            {
                message.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }
        if (request.ContentType is { } contentType && message.Content is not null)
        {
            message.Content.Headers.Remove("Content-Type");
            message.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        }
        message.Headers.TryAddWithoutValidation("dapr-caller-app-id", callerAppId);
        message.Headers.TryAddWithoutValidation("dapr-callee-app-id", channel.AppId);
        message.Headers.TryAddWithoutValidation("traceparent", traceparent);
        if (request.ClientAddress is { } client)
        {
            message.Headers.TryAddWithoutValidation("X-Forwarded-For", client);
        }
        if (request.Host is { } host)
        {
            message.Headers.TryAddWithoutValidation("X-Forwarded-Host", host);
        }
        message.Headers.TryAddWithoutValidation("X-Forwarded-Proto", request.Scheme);
        if (channel.Config.AppApiToken is { } appToken)
        {
            message.Headers.TryAddWithoutValidation("dapr-api-token", appToken);
        }
        return message;
    }

    /// <summary>The caller's W3C traceparent, or a new trace when it sent none (or a malformed one).</summary>
    private static string TraceParent(IEnumerable<KeyValuePair<string, StringValues>> headers)
    {
        var given = headers is IDictionary<string, StringValues> dictionary
            ? (dictionary.TryGetValue("traceparent", out var found) ? found : StringValues.Empty)
            : headers.FirstOrDefault(h => h.Key.Equals("traceparent", StringComparison.OrdinalIgnoreCase)).Value;
        if (given.Count > 0 && given[0] is { Length: 55 } value && ActivityContext.TryParse(value, null, out _))
        {
            return value;
        }
        return $"00-{ActivityTraceId.CreateRandom().ToHexString()}-{ActivitySpanId.CreateRandom().ToHexString()}-01";
    }

    /// <summary>The method path with empty, <c>.</c> and <c>..</c> segments removed and every segment escaped.</summary>
    public static string CleanMethod(string method)
    {
        var builder = new StringBuilder(method.Length);
        foreach (var segment in method.Split('/'))
        {
            var plain = Uri.UnescapeDataString(segment);
            if (plain is "" or "." or "..")
            {
                continue;
            }
            if (builder.Length > 0)
            {
                builder.Append('/');
            }
            builder.Append(Uri.EscapeDataString(plain));
        }
        return builder.ToString();
    }
}

internal static partial class InvocationLog
{
    [LoggerMessage(2101, LogLevel.Information, "Tenant {CallerAppId}: call to {TargetAppId} {Verb} /{Method} denied by access control")]
    public static partial void Denied(ILogger logger, string callerAppId, string targetAppId, string verb, string method);

    [LoggerMessage(2102, LogLevel.Warning, "Tenant {CallerAppId}: call to {TargetAppId} /{Method} failed: {Problem}")]
    public static partial void Failed(ILogger logger, string callerAppId, string targetAppId, string method, string problem);
}
