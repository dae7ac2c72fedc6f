using System.Diagnostics;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Timeout;
using SharedRuntime.Admission;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Diagnostics;
using SharedRuntime.Configuration;
using SharedRuntime.Tenancy;

namespace SharedRuntime.AppChannel;

/// <summary>
/// Service invocation: normalises the method path, checks the target's access control against exactly the path the
/// app will receive, refuses what the caller sent that cannot be forwarded (its 400, before the app is called), takes
/// a slot in the target app's channel, and sends the call through the caller's resiliency pipeline for that target.
/// Only the app's own failures move its breakers. The caller's token never reaches the target;
/// <c>dapr-caller-app-id</c> is always the runtime's own knowledge of the caller.
/// </summary>
internal sealed partial class ServiceInvocation(AppChannels channels, ResiliencyPolicies policies, ILogger<ServiceInvocation> logger,
    Diagnostics.RuntimeTracing? tracing = null, ExternalEndpoints? external = null, AppHealthProbes? health = null)
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
    public Task<HttpResponseMessage> InvokeAsync(TenantContext caller, InvocationRequest request, CancellationToken cancellationToken)
    {
        // Dapr's order: an HTTPEndpoint the caller may see, then a URL, then an app-id.
        if (external?.Find(caller, request.TargetAppId) is { } destination)
        {
            return InvokeExternalAsync(caller, destination, request, cancellationToken);
        }
        // The target, its channel and its access control, as the last applied snapshot compiled them.
        // A bare app-id stays in the caller's namespace; app-id.namespace names another (Dapr's form).
        var target = channels.FindTarget(ResourceNamespace.Target(request.TargetAppId, caller.Namespace))
            ?? throw new DaprApiException(404, "ERR_DIRECT_INVOKE", $"failed to invoke, id: {request.TargetAppId}: no app with this id is served here");
        var channel = target.Channel
            ?? throw new DaprApiException(404, "ERR_DIRECT_INVOKE", $"failed to invoke, id: {target.AppId}: the app has no appEndpoint");
        if (!MethodPath.TryParse(request.Method, request.MethodForm, out var path, out var problem))
        {
            throw Refused(caller, target.AppId, problem!);
        }
        if (path.Escaped.Length + request.Query.Length > MaxTargetLength)
        {
            throw Refused(caller, target.AppId, $"the method path and query are longer than {MaxTargetLength} characters once encoded");
        }
        if (target.AccessControl is { } acl && !acl.IsAllowed(ResourceNamespace.Key(caller.Config.AppId, caller.Namespace), path.Plain, request.Verb))
        {
            InvocationLog.Denied(logger, caller.AppId, target.AppId, request.Verb, path.Escaped);
            throw new DaprApiException(403, "ERR_DIRECT_INVOKE",
                $"access control policy has denied access to id: {target.AppId} operation: {path.Escaped} verb: {request.Verb} for caller {caller.AppId}");
        }
        if (Unsendable(request) is { } unsendable)
        {
            throw Refused(caller, target.AppId, unsendable);
        }
        if (request.Proxied && channel.Protocol == Configuration.AppProtocol.Http)
        {
            throw new DaprApiException(400, "ERR_DIRECT_INVOKE", $"failed to proxy a gRPC call to id: {target.AppId}: the app speaks HTTP/1.1 (appProtocol http), not gRPC")
            {
                GrpcOverride = (int)global::Grpc.Core.StatusCode.FailedPrecondition,
            };
        }
        if (health?.Refusal(target.AppId) is { } unhealthy)
        {
            throw unhealthy; // Dapr's answer while the app fails its health checks: the app is not called
        }
        if (channel.Protocol == Configuration.AppProtocol.Grpc && !request.Proxied && request.BodyStream is { } whole)
        {
            return ReadThenForwardAsync(caller, channel, target.AppId, request, whole, path.Escaped, cancellationToken);
        }
        // Checked without awaiting anything: the call goes on as the forward's own task, without a state machine here.
        return ForwardAsync(caller, channel, target.AppId, request, path.Escaped, null, cancellationToken);
    }

    /// <summary>An app reached over gRPC gets the body in one InvokeRequest: it is read whole before the call.</summary>
    private async Task<HttpResponseMessage> ReadThenForwardAsync(TenantContext caller, AppChannel channel, string targetAppId, InvocationRequest request, Stream whole, string method,
        CancellationToken cancellationToken)
    {
        try
        {
            request = request with { Body = await ReadWholeAsync(whole, cancellationToken).ConfigureAwait(false), BodyStream = null };
        }
        catch (CallerFaultException ex)
        {
            throw Refused(caller, targetAppId, ex.Message);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw; // past the caller's body limit: its 413, as for any other API
        }
        catch (IOException ex)
        {
            throw Refused(caller, targetAppId, $"the request body could not be read to its end: {ex.Message}");
        }
        return await ForwardAsync(caller, channel, targetAppId, request, method, null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends a checked call through <paramref name="channel"/>: a slot on the caller's own line, then the caller's
    /// resiliency pipeline for <paramref name="targetName"/>; maps what failed to the caller's Dapr error.
    /// </summary>
    private async Task<HttpResponseMessage> ForwardAsync(TenantContext caller, AppChannel channel, string targetName, InvocationRequest request, string method,
        ExternalDestination? destination, CancellationToken cancellationToken)
    {
        var body = request.BodyStream is { } stream ? new CallerBodyStream(stream) : null;

        try
        {
            // One line per calling app: a caller flooding the target waits behind its own calls, not others'.
            await channel.Calls.EnterAsync(caller.AppId, channel.Config.MaxQueue, cancellationToken).ConfigureAwait(false);
        }
        catch (FairQueueFullException)
        {
            throw new DaprApiException(429, "ERR_TENANT_APP_BUSY", new AppBusyException(targetName, caller.AppId, channel.Config.MaxConcurrency, channel.Config.MaxQueue).Message)
            {
                RetryAfterSeconds = 1,
            };
        }
        try
        {
            var pipeline = policies.ForApp(caller.AppId, targetName);
            var traceparent = TraceParent(request.Headers);
            using var span = tracing?.StartInvoke(caller.AppId, targetName, method, traceparent);
            traceparent = span?.Id ?? traceparent;
            if (pipeline == ResiliencePipeline<AppCallResult>.Empty)
            {
                // No policy: one attempt, without a resilience context.
                var once = await SendOnceAsync(channel, destination, request, body, method, caller.Config.AppId, traceparent, cancellationToken).ConfigureAwait(false);
                return once.Response!;
            }
            var context = ResilienceContextPool.Shared.Get(cancellationToken);
            context.Properties.Set(ResiliencyPolicies.Streamed, request.BodyStream is not null);
            context.Properties.Set(ResiliencyPolicies.CallerBody, body);
            try
            {
                var result = await pipeline.ExecuteAsync(
                    static (ctx, state) => SendOnceAsync(state.channel, state.destination, state.request, state.body, state.method, state.AppId, state.traceparent, ctx.CancellationToken),
                    context,
                    (channel, destination, request, body, method, caller.Config.AppId, traceparent)).ConfigureAwait(false);
                return result.Response!;
            }
            finally
            {
                ResilienceContextPool.Shared.Return(context);
            }
        }
        catch (CallerFaultException ex) when (BodyOverLimit(ex) is { } overLimit)
        {
            // The caller's body went past its limit while it was streamed to the app: its 413, as when it is read whole.
            throw overLimit;
        }
        catch (CallerFaultException ex)
        {
            InvocationLog.CallerFault(logger, caller.AppId, targetName, ex.Message);
            throw new DaprApiException(ex.TimedOut ? 408 : 400, "ERR_DIRECT_INVOKE", $"failed to invoke, id: {targetName}: {ex.Message}", ex);
        }
        catch (TimeoutRejectedException ex) when (body is { IsCallersFault: true })
        {
            InvocationLog.CallerFault(logger, caller.AppId, targetName, "the request body did not arrive in time");
            throw new DaprApiException(408, "ERR_DIRECT_INVOKE", $"failed to invoke, id: {targetName}: the request body did not arrive in time", ex);
        }
        catch (Exception ex) when (ex is CircuitOpenException or TimeoutException or TimeoutRejectedException or HttpRequestException)
        {
            InvocationLog.Failed(logger, caller.AppId, targetName, method, ex.Message);
            throw new DaprApiException(500, "ERR_DIRECT_INVOKE", $"failed to invoke, id: {targetName}, err: {ex.Message}", ex)
            {
                GrpcOverride = ex is CircuitOpenException ? 14 : ex is HttpRequestException ? 14 : 4,
            };
        }
        finally
        {
            channel.Calls.Exit();
        }
    }

    /// <summary>The server's refusal of a body past the caller's limit, when that is what failed the read of it.</summary>
    private static BadHttpRequestException? BodyOverLimit(Exception exception)
    {
        for (var inner = exception.InnerException; inner is not null; inner = inner.InnerException)
        {
            if (inner is BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } overLimit)
            {
                return overLimit;
            }
        }
        return null;
    }

    /// <summary>Longest method path plus query sent to an app, once encoded (a URI has a length limit; HTTP servers a lower one).</summary>
    public const int MaxTargetLength = 16 * 1024;

    private DaprApiException Refused(TenantContext caller, string targetAppId, string problem)
    {
        InvocationLog.CallerFault(logger, caller.AppId, targetAppId, problem);
        return new DaprApiException(400, "ERR_DIRECT_INVOKE", $"failed to invoke, id: {targetAppId}: {problem}");
    }

    /// <summary>
    /// Why the app could not be sent what the caller asked for, or null: a verb that is not an HTTP token (or is CONNECT), a header
    /// whose name is not a token or whose value is not visible ASCII (no CR, LF, NUL or non-ASCII byte), a query or
    /// content type with such characters. Refused before the app is called, so it never counts as the app's failure.
    /// </summary>
    internal static string? Unsendable(InvocationRequest request)
    {
        if (!IsToken(request.Verb))
        {
            return "the HTTP verb is not a valid token";
        }
        if (string.Equals(request.Verb, "CONNECT", StringComparison.OrdinalIgnoreCase))
        {
            // CONNECT asks for a tunnel, not a method of the app.
            return "the HTTP verb CONNECT cannot invoke a method";
        }
        foreach (var (name, values) in request.Headers)
        {
            if (DroppedHeaders.Contains(name))
            {
                continue;
            }
            if (!IsToken(name))
            {
                return "a header name has characters HTTP does not allow (only ASCII letters, digits and !#$%&'*+-.^_`|~)";
            }
            foreach (var value in values)
            {
                if (value is not null && !IsFieldValue(value))
                {
                    return $"header {name} has a value that cannot be sent to the app: only visible ASCII and spaces are allowed";
                }
            }
        }
        if (request.Query.Length > 0 && (request.Query[0] != '?' || request.Query.AsSpan(1).IndexOfAnyExcept(QueryChars) >= 0))
        {
            return "the query string has characters that must be percent-encoded";
        }
        if (request.ContentType is { } contentType && !IsFieldValue(contentType))
        {
            return "the content type has a value that cannot be sent to the app: only visible ASCII and spaces are allowed";
        }
        return null;
    }

    private static readonly System.Buffers.SearchValues<char> TokenChars =
        System.Buffers.SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");

    /// <summary>Visible ASCII but '#' (a fragment never reaches the app) and space.</summary>
    private static readonly System.Buffers.SearchValues<char> QueryChars =
        System.Buffers.SearchValues.Create("!\"$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~");

    private static bool IsToken(string value) => value.Length > 0 && value.AsSpan().IndexOfAnyExcept(TokenChars) < 0;

    private static bool IsFieldValue(string value)
    {
        foreach (var c in value)
        {
            if (c is not ('\t' or (>= ' ' and <= '~')))
            {
                return false;
            }
        }
        return true;
    }

    private static ValueTask<AppCallResult> SendOnceAsync(AppChannel channel, ExternalDestination? destination, InvocationRequest request, CallerBodyStream? body, string method, string callerAppId,
        string traceparent, CancellationToken cancellationToken) =>
        channel.Protocol == Configuration.AppProtocol.Grpc && !request.Proxied
            ? SendOnInvokeAsync(channel, request, method, callerAppId, traceparent, cancellationToken)
            : channel.SendAsync(destination is null ? Build(channel, request, body, method, callerAppId, traceparent) : BuildExternal(destination, request, body, method, traceparent), Classify, cancellationToken);

    /// <summary>
    /// The app's answer as the call's result; a 5xx counts as the app's failure. An app that answers 101 (switching its
    /// connection to another protocol no invocation asks for) failed the call: its answer is not one the caller can be given.
    /// </summary>
    private static ValueTask<AppCallResult> Classify(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if ((int)response.StatusCode < 200)
        {
            response.Dispose();
            throw new HttpRequestException(HttpRequestError.InvalidResponse, "the app's answer is not valid HTTP/1.1: it switched protocols, which an invocation does not ask for");
        }
        return ValueTask.FromResult(new AppCallResult
        {
            Response = response,
            StatusCode = (int)response.StatusCode,
            Failed = (int)response.StatusCode >= 500,
        });
    }

    private static HttpRequestMessage Build(AppChannel channel, InvocationRequest request, CallerBodyStream? callerBody, string method, string callerAppId, string traceparent)
    {
        if (request.Proxied)
        {
            return BuildProxied(channel, request, callerBody, method, callerAppId, traceparent);
        }
        var message = new HttpRequestMessage(MethodOf(request.Verb), new Uri($"{channel.Endpoint.OriginalString}/{method}{request.Query}", UriKind.Absolute));
        if (request.Body is { } body)
        {
            message.Content = new ReadOnlyMemoryContent(body);
        }
        else if (callerBody is not null)
        {
            message.Content = new StreamContent(callerBody);
            message.Options.Set(CallerBodyStream.Key, callerBody);
        }
        AddHeaders(message, channel, request, callerAppId, traceparent);
        return message;
    }

    /// <summary>
    /// The caller's headers less the hop-by-hop and runtime-owned ones, then what the runtime says itself: the caller
    /// and callee app-ids, the trace parent, X-Forwarded-*, and the target app's own token when it has one.
    /// </summary>
    private static void AddHeaders(HttpRequestMessage message, AppChannel channel, InvocationRequest request, string callerAppId, string traceparent, bool asGrpcMetadata = false)
    {
        foreach (var (name, values) in request.Headers)
        {
            if (DroppedHeaders.Contains(name) || name.Equals("traceparent", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            if (asGrpcMetadata && (name.StartsWith("grpc-", StringComparison.OrdinalIgnoreCase) || name.StartsWith("content-", StringComparison.OrdinalIgnoreCase) ||
                name.StartsWith(':')))
            {
                continue; // gRPC's own headers, and the HTTP body's, which the InvokeRequest carries
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
        if (request.ContentType is { } contentType && message.Content is not null && !asGrpcMetadata)
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
            message.Headers.Remove("dapr-api-token");
            message.Headers.TryAddWithoutValidation("dapr-api-token", appToken);
        }
    }

    /// <summary>The shared instance of a common verb spelt exactly as HTTP does (methods are case-sensitive), else a new one.</summary>
    private static HttpMethod MethodOf(string verb) => verb switch
    {
        "GET" => HttpMethod.Get,
        "POST" => HttpMethod.Post,
        "PUT" => HttpMethod.Put,
        "DELETE" => HttpMethod.Delete,
        "PATCH" => HttpMethod.Patch,
        "HEAD" => HttpMethod.Head,
        "OPTIONS" => HttpMethod.Options,
        _ => new HttpMethod(verb),
    };

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
        return string.Create(55, 0, static (text, _) =>
        {
            Span<byte> id = stackalloc byte[16];
            "00-".CopyTo(text);
            ActivityTraceId.CreateRandom().CopyTo(id);
            Convert.TryToHexStringLower(id, text[3..35], out _);
            text[35] = '-';
            ActivitySpanId.CreateRandom().CopyTo(id[..8]);
            Convert.TryToHexStringLower(id[..8], text[36..52], out _);
            "-01".CopyTo(text[52..]);
        });
    }
}

internal static partial class InvocationLog
{
    [LoggerMessage(2101, LogLevel.Information, "Tenant {CallerAppId}: call to {TargetAppId} {Verb} /{Method} denied by access control")]
    public static partial void Denied(ILogger logger, string callerAppId, string targetAppId, string verb, string method);

    [LoggerMessage(2102, LogLevel.Warning, "Tenant {CallerAppId}: call to {TargetAppId} /{Method} failed: {Problem}")]
    public static partial void Failed(ILogger logger, string callerAppId, string targetAppId, string method, string problem);

    [LoggerMessage(2103, LogLevel.Information, "Tenant {CallerAppId}: call to {TargetAppId} refused, the request is at fault: {Problem}")]
    public static partial void CallerFault(ILogger logger, string callerAppId, string targetAppId, string problem);

    [LoggerMessage(2104, LogLevel.Warning, "Tenant {CallerAppId}: call to {TargetAppId} /{Method} cut off: the app sent nothing more of its answer for {Seconds}s")]
    public static partial void AnswerStalled(ILogger logger, string callerAppId, string targetAppId, string method, double seconds);
}
