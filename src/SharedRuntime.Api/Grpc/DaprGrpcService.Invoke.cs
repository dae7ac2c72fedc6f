using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.AppChannel;
using SharedRuntime.BuildingBlocks;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.Grpc;

public partial class DaprGrpcService
{
    /// <summary>Largest app answer passed back over gRPC (the whole message is held in memory).</summary>
    public const int MaxInvokeResponseBytes = 16 * 1024 * 1024;

    /// <summary>
    /// InvokeService to an HTTP app, as Dapr does it: the HTTP verb and query string from <c>http_extension</c>
    /// (POST when none), the data's bytes as the body; a non-2xx answer becomes the matching gRPC status.
    /// </summary>
    public virtual async Task<Autogen.InvokeResponse> InvokeService(Autogen.InvokeServiceRequest request, ServerCallContext context)
    {
        var httpContext = context.GetHttpContext();
        var invocation = httpContext.RequestServices.GetRequiredService<ServiceInvocation>();
        var message = request.Message ?? throw Errors.Malformed("InvokeServiceRequest.message is required");
        if (string.IsNullOrEmpty(request.Id))
        {
            throw Errors.Malformed("InvokeServiceRequest.id is required");
        }
        var verb = message.HttpExtension?.Verb is { } v && v != Autogen.HTTPExtension.Types.Verb.None ? v.ToString().ToUpperInvariant() : "POST";
        var query = message.HttpExtension?.Querystring is { Length: > 0 } q ? "?" + q.TrimStart('?') : "";
        var headers = RequestHeaders(context)
            .Where(static h => !h.IsBinary && !h.Key.StartsWith("grpc-", StringComparison.Ordinal) && !h.Key.StartsWith(':') &&
                               h.Key is not ("content-type" or "te" or "user-agent"))
            .Select(static h => new KeyValuePair<string, Microsoft.Extensions.Primitives.StringValues>(h.Key, h.Value));

        using var response = await invocation.InvokeAsync(Tenant(context), new InvocationRequest
        {
            TargetAppId = request.Id,
            Method = message.Method,
            Verb = verb,
            Query = query,
            Headers = headers,
            Body = message.Data?.Value.Memory ?? ReadOnlyMemory<byte>.Empty,
            ContentType = string.IsNullOrEmpty(message.ContentType) ? "application/json" : message.ContentType,
            ClientAddress = httpContext.Connection.RemoteIpAddress?.ToString(),
            Scheme = "http",
        }, context.CancellationToken).ConfigureAwait(false);

        var body = await ReadBoundedAsync(response.Content, context.CancellationToken).ConfigureAwait(false);
        var status = (int)response.StatusCode;
        if (status is < 200 or > 299)
        {
            var trailers = new Metadata { { "dapr-http-status", status.ToString(System.Globalization.CultureInfo.InvariantCulture) } };
            throw new RpcException(new Status(FromHttp(status), $"app {request.Id} answered {status}: {System.Text.Encoding.UTF8.GetString(body.Length > 1024 ? body[..1024] : body)}"), trailers);
        }
        return new Autogen.InvokeResponse
        {
            Data = new Google.Protobuf.WellKnownTypes.Any { Value = ByteString.CopyFrom(body) },
            ContentType = response.Content.Headers.ContentType?.ToString() ?? "",
        };
    }

    private static async Task<byte[]> ReadBoundedAsync(HttpContent content, CancellationToken cancellationToken)
    {
        if (content.Headers.ContentLength > MaxInvokeResponseBytes)
        {
            throw new DaprApiException(500, "ERR_DIRECT_INVOKE", $"the app's answer is larger than {MaxInvokeResponseBytes} bytes");
        }
        await using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > MaxInvokeResponseBytes)
            {
                throw new DaprApiException(500, "ERR_DIRECT_INVOKE", $"the app's answer is larger than {MaxInvokeResponseBytes} bytes");
            }
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }

    private static StatusCode FromHttp(int status) => status switch
    {
        400 => StatusCode.InvalidArgument,
        401 => StatusCode.Unauthenticated,
        403 => StatusCode.PermissionDenied,
        404 => StatusCode.NotFound,
        409 => StatusCode.Aborted,
        412 => StatusCode.FailedPrecondition,
        429 => StatusCode.ResourceExhausted,
        499 => StatusCode.Cancelled,
        501 => StatusCode.Unimplemented,
        503 => StatusCode.Unavailable,
        504 => StatusCode.DeadlineExceeded,
        _ when status >= 500 => StatusCode.Internal,
        _ => StatusCode.Unknown,
    };
}
