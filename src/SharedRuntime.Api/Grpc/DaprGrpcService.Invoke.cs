using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using SharedRuntime.AppChannel;
using SharedRuntime.Admission;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Http;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.Grpc;

internal sealed partial class DaprGrpcService
{
    /// <summary>Largest app answer passed back over gRPC (the whole message is held in memory).</summary>
    public const int MaxInvokeResponseBytes = 16 * 1024 * 1024;

    /// <summary>
    /// InvokeService to an HTTP app, as Dapr does it: the HTTP verb and query string from <c>http_extension</c>
    /// (POST when none), the data's bytes as the body; a non-2xx answer becomes the matching gRPC status.
    /// </summary>
    public async Task<Autogen.InvokeResponse> InvokeService(Autogen.InvokeServiceRequest request, ServerCallContext context)
    {
        var httpContext = context.GetHttpContext();
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

        var body = await ReadBoundedAsync(response.Content, httpContext.Memory(), request.Id, AppChannel.AppChannel.ReadTimeoutOf(response), context.CancellationToken).ConfigureAwait(false);
        var status = (int)response.StatusCode;
        if (status is < 200 or > 299)
        {
            throw DaprErrors.AppAnswered(status, $"app {request.Id} answered {status}: {System.Text.Encoding.UTF8.GetString(body.Span[..Math.Min(body.Length, 1024)])}");
        }
        return new Autogen.InvokeResponse
        {
            Data = new Google.Protobuf.WellKnownTypes.Any { Value = UnsafeByteOperations.UnsafeWrap(body) },
            ContentType = response.Content.Headers.ContentType?.ToString() ?? "",
        };
    }

    /// <summary>
    /// The app's whole answer, at most <see cref="MaxInvokeResponseBytes"/>, charged to the caller's memory budget as
    /// it arrives (a declared length before a byte is read). An app that sends nothing more of it for
    /// <paramref name="idle"/> (its channel's timeout) failed the call, as one that did not answer in time.
    /// </summary>
    private static async Task<ReadOnlyMemory<byte>> ReadBoundedAsync(HttpContent content, RequestMemory? memory, string appId, TimeSpan idle, CancellationToken cancellationToken)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            return await ReadPausingAtMostAsync(content, memory, wait, idle).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new DaprApiException(500, "ERR_DIRECT_INVOKE", $"failed to invoke, id: {appId}, err: the app sent nothing more of its answer for {idle.TotalSeconds:0.###}s", ex)
            {
                GrpcOverride = (int)StatusCode.DeadlineExceeded,
            };
        }
    }

    /// <summary>The body read itself: <paramref name="wait"/> is cancelled when a read waits longer than <paramref name="idle"/>.</summary>
    private static async Task<ReadOnlyMemory<byte>> ReadPausingAtMostAsync(HttpContent content, RequestMemory? memory, CancellationTokenSource wait, TimeSpan idle)
    {
        var cancellationToken = wait.Token;
        wait.CancelAfter(idle);
        var declared = content.Headers.ContentLength;
        if (declared > MaxInvokeResponseBytes)
        {
            throw new DaprApiException(500, "ERR_DIRECT_INVOKE", $"the app's answer is larger than {MaxInvokeResponseBytes} bytes");
        }
        await using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = new byte[declared ?? 16 * 1024];
        memory.Charge(buffer.Length, "the app's answer");
        var length = 0;
        while (true)
        {
            if (length == buffer.Length)
            {
                if (declared is not null)
                {
                    // The app sent more than it declared; what it declared is its answer.
                    break;
                }
                if (length >= MaxInvokeResponseBytes)
                {
                    throw new DaprApiException(500, "ERR_DIRECT_INVOKE", $"the app's answer is larger than {MaxInvokeResponseBytes} bytes");
                }
                var larger = Math.Min(2 * buffer.Length, MaxInvokeResponseBytes + 1);
                var smaller = buffer.Length;
                memory.Charge(larger, "the app's answer");
                Array.Resize(ref buffer, larger);
                memory?.Release(smaller);
            }
            wait.CancelAfter(idle);
            var read = await stream.ReadAsync(buffer.AsMemory(length), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }
            length += read;
        }
        if (length > MaxInvokeResponseBytes)
        {
            throw new DaprApiException(500, "ERR_DIRECT_INVOKE", $"the app's answer is larger than {MaxInvokeResponseBytes} bytes");
        }
        return buffer.AsMemory(0, length);
    }
}
