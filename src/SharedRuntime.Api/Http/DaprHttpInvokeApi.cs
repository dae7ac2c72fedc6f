using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.Extensions.Primitives;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.Admission;
using SharedRuntime.AppChannel;
using SharedRuntime.BuildingBlocks;

namespace SharedRuntime.Http;

/// <summary>
/// Service invocation over HTTP: <c>/v1.0/invoke/{appId}/method/{method}</c> with any verb, and any other path that
/// carries a <c>dapr-app-id</c> header; the app-id may also be an HTTPEndpoint's name or a URL (Dapr's invoke-by-URL). Bodies stream through unless a retry policy could need them twice. Both forms
/// hand the invocation the path as Kestrel decoded it, which it refuses when still ambiguous (an encoded slash).
/// </summary>
internal static class DaprHttpInvokeApi
{
    public const string AppIdHeader = "dapr-app-id";

    /// <summary>The route of the invoke API; <see cref="UseInvokeRoute"/> recognises the same paths before the router.</summary>
    internal const string InvokeRoute = "/v1.0/invoke/{appId}/method/{**method}";

    public static IEndpointRouteBuilder MapDaprHttpInvoke(this IEndpointRouteBuilder endpoints)
    {
        var invocation = new InvocationOf(endpoints.ServiceProvider);
        endpoints.Map(InvokeRoute, context =>
                ForwardAsync(context, invocation.Get(), context.RouteValue("appId"), (string?)context.Request.RouteValues["method"] ?? ""))
            .WithMetadata(new ApiEndpointMetadata(Listener.DaprHttp, "invoke"));
        endpoints.MapFallback(context =>
            {
                var appId = context.Request.Headers[AppIdHeader].ToString();
                if (appId.Length == 0 && TrySplitUrlForm(context.Request.Path.Value ?? "", out var url, out var urlMethod))
                {
                    return ForwardAsync(context, invocation.Get(), url, urlMethod);
                }
                if (appId.Length == 0)
                {
                    throw new DaprApiException(404, "ERR_NOT_FOUND", $"no Dapr API at {context.Request.Method} {context.Request.Path}; to invoke an app, send a dapr-app-id header");
                }
                return ForwardAsync(context, invocation.Get(), appId, context.Request.Path.Value ?? "");
            })
            .WithMetadata(new ApiEndpointMetadata(Listener.DaprHttp, "invoke"));
        return endpoints;
    }

    /// <summary>
    /// The invoke API's own route, <c>/v1.0/invoke/{appId}/method/{method}</c>, recognised from the path before the
    /// router runs, as <see cref="DaprHttpHandlers.UseStateGetRoute"/> does for the state GET: the endpoint is set directly,
    /// so the router neither matches the catch-all nor builds a route-value dictionary for it. The endpoint has the routed
    /// one's pattern and metadata, so the tenant middleware and an API policy treat it alike. A path this does not
    /// recognise exactly (an empty app-id or method, the invoke-by-URL form) goes to the router as before. Call before
    /// <c>UseRouting</c>.
    /// </summary>
    public static IApplicationBuilder UseInvokeRoute(IApplicationBuilder app)
    {
        var invocation = new InvocationOf(app.ApplicationServices);
        var endpoint = new RouteEndpoint(
            context =>
            {
                TryMatchInvoke(context.Request.Path.Value, out var appId, out var method);
                return ForwardAsync(context, invocation.Get(), appId, method);
            },
            RoutePatternFactory.Parse(InvokeRoute), 0,
            new EndpointMetadataCollection(new ApiEndpointMetadata(Listener.DaprHttp, "invoke")),
            "HTTP: " + InvokeRoute);
        return app.Use(next => context =>
        {
            if (context.GetEndpoint() is null && TryFindInvoke(context.Request.Path.Value, out _))
            {
                context.SetEndpoint(endpoint);
            }
            return next(context);
        });
    }

    private const string InvokePrefix = "/v1.0/invoke/";

    private const string MethodLiteral = "/method/";

    /// <summary>
    /// Whether <paramref name="path"/> is <c>/v1.0/invoke/{appId}/method/{method}</c> as the route matches it (literals in
    /// any case), with a non-empty app-id and method; the values are the path's own characters, as the router's are.
    /// </summary>
    internal static bool TryMatchInvoke(string? path, out string appId, out string method)
    {
        if (!TryFindInvoke(path, out var appIdEnd))
        {
            appId = method = "";
            return false;
        }
        appId = path![InvokePrefix.Length..appIdEnd];
        method = path[(appIdEnd + MethodLiteral.Length)..];
        return true;
    }

    /// <summary>Where the app-id of an invoke path ends, without taking the values out of it.</summary>
    private static bool TryFindInvoke(string? path, out int appIdEnd)
    {
        appIdEnd = 0;
        if (path is null || !path.StartsWith(InvokePrefix, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        var rest = path.AsSpan(InvokePrefix.Length);
        var slash = rest.IndexOf('/');
        if (slash <= 0 || !rest[slash..].StartsWith(MethodLiteral, StringComparison.OrdinalIgnoreCase) || rest.Length == slash + MethodLiteral.Length)
        {
            return false;
        }
        appIdEnd = InvokePrefix.Length + slash;
        return true;
    }

    /// <summary>
    /// The invocation service, taken from the root container on first use: resolving it through
    /// <c>RequestServices</c> would make a request scope on every call.
    /// </summary>
    private sealed class InvocationOf(IServiceProvider services)
    {
        private ServiceInvocation? _invocation;

        public ServiceInvocation Get() => _invocation ??= services.GetRequiredService<ServiceInvocation>();
    }

    /// <summary>
    /// Dapr's invoke-by-URL form, <c>/v1.0/invoke/http://host:port/method/{method}</c>, which the route above cannot
    /// match (the URL has slashes): the URL runs to the first <c>/method/</c> after its host.
    /// </summary>
    internal static bool TrySplitUrlForm(string path, out string url, out string method)
    {
        url = method = "";
        if (!path.StartsWith(InvokePrefix, StringComparison.Ordinal) || !ExternalEndpoints.LooksLikeUrl(path[InvokePrefix.Length..]))
        {
            return false;
        }
        var rest = path.AsSpan(InvokePrefix.Length);
        var scheme = rest.IndexOf("//", StringComparison.Ordinal);
        var split = scheme < 0 ? -1 : rest[(scheme + 2)..].IndexOf("/method/", StringComparison.Ordinal);
        if (split < 0)
        {
            return false;
        }
        split += scheme + 2;
        url = rest[..split].ToString();
        method = rest[(split + "/method/".Length)..].ToString();
        return true;
    }

    private static async Task ForwardAsync(HttpContext context, ServiceInvocation invocation, string appId, string method)
    {
        var caller = context.Tenant();
        var request = context.Request;
        var canHaveBody = context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? request.ContentLength > 0;
        ReadOnlyMemory<byte>? body = null;
        Stream? bodyStream = null;
        if (canHaveBody)
        {
            // Held for retries only while the caller's memory budget has room; otherwise it streams once.
            if (request.ContentLength is { } length && length <= ServiceInvocation.MaxBufferedBody && invocation.MayRetry(caller, appId) &&
                context.Memory()?.TryCharge(length) == MemoryCharge.Charged)
            {
                var buffer = new MemoryStream((int)length);
                await request.Body.CopyToAsync(buffer, context.RequestAborted).ConfigureAwait(false);
                body = buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
            }
            else
            {
                bodyStream = request.Body;
            }
        }

        using var response = await invocation.InvokeAsync(caller, new InvocationRequest
        {
            TargetAppId = appId,
            Method = method,
            MethodForm = MethodPathForm.Decoded, // Kestrel has decoded every escape but %2F
            Verb = request.Method,
            Query = request.QueryString.Value ?? "",
            Headers = request.Headers,
            Body = body,
            BodyStream = bodyStream,
            ClientAddress = context.Connection.RemoteIpAddress?.ToString(),
            Host = request.Host.Value,
            Scheme = request.Scheme,
        }, context.RequestAborted).ConfigureAwait(false);

        context.Response.StatusCode = (int)response.StatusCode;
        var headers = context.Response.Headers;
        try
        {
            // The non-validated views pass the app's header values through as they came, without parsing them.
            foreach (var (name, values) in response.Headers.NonValidated)
            {
                if (ServiceInvocation.PassesBack(name))
                {
                    headers[name] = values.Count == 1 ? new StringValues(values.ToString()) : new StringValues([.. values]);
                }
            }
            foreach (var (name, values) in response.Content.Headers.NonValidated)
            {
                headers[name] = values.Count == 1 ? new StringValues(values.ToString()) : new StringValues([.. values]);
            }
        }
        catch (InvalidOperationException ex)
        {
            // A header the server refuses to send (a control character, a Content-Length that is not one number): the
            // app's answer cannot be passed on, which is the app's failure, not the runtime's.
            headers.Clear();
            var problem = $"the app's answer is not valid HTTP/1.1: {ex.Message}";
            InvocationLog.Failed(context.RequestServices.GetRequiredService<Microsoft.Extensions.Logging.ILogger<ServiceInvocation>>(), caller.AppId, appId, method, problem);
            throw new DaprApiException(500, "ERR_DIRECT_INVOKE", $"failed to invoke, id: {appId}, err: {problem}", ex);
        }
        await using var stream = await response.Content.ReadAsStreamAsync(context.RequestAborted).ConfigureAwait(false);
        await CopyAnswerAsync(stream, context, AppChannel.AppChannel.ReadTimeoutOf(response), caller.AppId, appId, method).ConfigureAwait(false);
    }

    /// <summary>
    /// Copies the app's answer body to the caller. An app that stops sending in the middle of its answer for longer
    /// than its channel's timeout has the caller's connection cut (the status line may already be out), as the app's
    /// own failure: the caller is not held for as long as it is willing to wait.
    /// </summary>
    private static async Task CopyAnswerAsync(Stream answer, HttpContext context, TimeSpan idle, string callerAppId, string targetAppId, string method)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(16 * 1024);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        try
        {
            while (true)
            {
                wait.CancelAfter(idle);
                int read;
                try
                {
                    read = await answer.ReadAsync(buffer, wait.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
                {
                    InvocationLog.AnswerStalled(context.RequestServices.GetRequiredService<Microsoft.Extensions.Logging.ILogger<ServiceInvocation>>(),
                        callerAppId, targetAppId, method, idle.TotalSeconds);
                    context.Abort();
                    return;
                }
                catch (IOException ex) when (!context.RequestAborted.IsCancellationRequested)
                {
                    // The app's answer broke off or is malformed past its head: the caller's connection is cut, as
                    // the answer cannot be completed; the app's failure, logged as one.
                    InvocationLog.Failed(context.RequestServices.GetRequiredService<Microsoft.Extensions.Logging.ILogger<ServiceInvocation>>(),
                        callerAppId, targetAppId, method, $"its answer broke off: {ex.Message}");
                    context.Abort();
                    return;
                }
                if (read == 0)
                {
                    return;
                }
                await context.Response.Body.WriteAsync(buffer.AsMemory(0, read), context.RequestAborted).ConfigureAwait(false);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
