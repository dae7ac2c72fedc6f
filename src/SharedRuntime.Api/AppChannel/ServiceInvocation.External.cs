using Microsoft.Extensions.Logging;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Tenancy;

namespace SharedRuntime.AppChannel;

/// <summary>
/// Invocation of a service outside the runtime: an HTTPEndpoint by name, or a URL in place of the app-id. The same
/// checks, caller's line, resiliency and error mapping as a call into an app, through the caller's own channel to that
/// destination; the request carries none of the runtime's own headers (no app-ids, no app token, no X-Forwarded-*).
/// </summary>
internal sealed partial class ServiceInvocation
{
    private async Task<HttpResponseMessage> InvokeExternalAsync(TenantContext caller, ExternalDestination destination, InvocationRequest request, CancellationToken cancellationToken)
    {
        if (destination.Refusal is { } refusal)
        {
            InvocationLog.ExternalRefused(logger, caller.AppId, destination.Name, refusal);
            throw new DaprApiException(403, "ERR_DIRECT_INVOKE", $"failed to invoke, id: {destination.Name}: {refusal}");
        }
        if (request.Proxied)
        {
            throw new DaprApiException(400, "ERR_DIRECT_INVOKE", $"failed to proxy a gRPC call to id: {destination.Name}: gRPC calls are proxied to apps only, not to HTTP endpoints")
            {
                GrpcOverride = (int)global::Grpc.Core.StatusCode.FailedPrecondition,
            };
        }
        if (!MethodPath.TryParse(request.Method, request.MethodForm, out var path, out var problem))
        {
            throw Refused(caller, destination.Name, problem!);
        }
        if (destination.Prefix.Length + path.Escaped.Length + request.Query.Length > MaxTargetLength)
        {
            throw Refused(caller, destination.Name, $"the URL, method path and query are longer than {MaxTargetLength} characters once encoded");
        }
        if (Unsendable(request) is { } unsendable)
        {
            throw Refused(caller, destination.Name, unsendable);
        }
        var channel = external!.ChannelFor(caller, destination)
            ?? throw new DaprApiException(400, "ERR_DIRECT_INVOKE",
                $"failed to invoke, id: {destination.Name}: the caller already calls {ExternalEndpoints.MaxDestinationsPerCaller} other destinations outside the runtime, its limit");
        return await ForwardAsync(caller, channel, destination.Name, request, path.Escaped, destination, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The request to a service outside the runtime: the caller's headers less the runtime's own, then the endpoint's headers.</summary>
    private static HttpRequestMessage BuildExternal(ExternalDestination destination, InvocationRequest request, CallerBodyStream? callerBody, string method, string traceparent)
    {
        var message = new HttpRequestMessage(MethodOf(request.Verb), new Uri($"{destination.Prefix}/{method}{request.Query}", UriKind.Absolute));
        if (request.Body is { } body)
        {
            message.Content = new ReadOnlyMemoryContent(body);
        }
        else if (callerBody is not null)
        {
            message.Content = new StreamContent(callerBody);
            message.Options.Set(CallerBodyStream.Key, callerBody);
        }
        foreach (var (name, values) in request.Headers)
        {
            if (DroppedHeaders.Contains(name) || name.Equals("traceparent", StringComparison.OrdinalIgnoreCase) || name.StartsWith("dapr-", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            if (!message.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values))
            {
                message.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }
        if (request.ContentType is { } contentType && message.Content is not null)
        {
            message.Content.Headers.Remove("Content-Type");
            message.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        }
        message.Headers.TryAddWithoutValidation("traceparent", traceparent);
        foreach (var (name, value) in destination.Headers)
        {
            // The resource's headers win over the caller's of the same name.
            if (message.Headers.NonValidated.Contains(name))
            {
                message.Headers.Remove(name);
            }
            else if (message.Content?.Headers.NonValidated.Contains(name) == true)
            {
                message.Content.Headers.Remove(name);
            }
            if (!message.Headers.TryAddWithoutValidation(name, value))
            {
                message.Content?.Headers.TryAddWithoutValidation(name, value);
            }
        }
        return message;
    }
}

internal static partial class InvocationLog
{
    [LoggerMessage(2110, LogLevel.Information, "Tenant {CallerAppId}: call to {Destination} refused: {Problem}")]
    public static partial void ExternalRefused(ILogger logger, string callerAppId, string destination, string problem);

    [LoggerMessage(2111, LogLevel.Warning, "{Source}: the HTTPEndpoint cannot be invoked: {Problem}")]
    public static partial void EndpointRefused(ILogger logger, string source, string problem);
}
