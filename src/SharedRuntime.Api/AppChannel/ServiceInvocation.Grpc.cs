using System.Text.Json;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using SharedRuntime.BuildingBlocks;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.AppChannel;

internal sealed partial class ServiceInvocation
{
    /// <summary>Largest message an app's AppCallback answer may hold, and largest body sent to it in one InvokeRequest.</summary>
    public const int MaxGrpcMessageBytes = 16 * 1024 * 1024;

    private static readonly JsonWriterOptions StatusJson = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// An invocation of an app that speaks gRPC (appProtocol <c>grpc</c>), as Dapr makes it: AppCallback/OnInvoke with
    /// the method, the body as <c>data</c>, its content type, and the verb and query string as <c>http_extension</c>;
    /// the caller's headers travel as metadata. The answer comes back as an HTTP answer: 200 with the data and its
    /// content type, or for a gRPC error the HTTP status Dapr gives that code with the status as JSON
    /// (<c>{"code","message","details"}</c>). A 5xx counts as the app's failure, as over HTTP.
    /// </summary>
    private static ValueTask<AppCallResult> SendOnInvokeAsync(AppChannel channel, InvocationRequest request, string method, string callerAppId, string traceparent,
        CancellationToken cancellationToken)
    {
        var invoke = new Autogen.InvokeRequest
        {
            Method = Uri.UnescapeDataString(method),
            Data = new Any { Value = request.Body is { } body ? UnsafeByteOperations.UnsafeWrap(body) : ByteString.Empty },
            ContentType = request.ContentType ?? ContentTypeOf(request.Headers) ?? "",
            HttpExtension = new Autogen.HTTPExtension { Verb = VerbOf(request.Verb), Querystring = request.Query.TrimStart('?') },
        };
        var message = AppCallbackCalls.Request(channel, AppCallbackCalls.AppCallback, "OnInvoke", invoke);
        AddHeaders(message, channel, request, callerAppId, traceparent, asGrpcMetadata: true);
        return channel.SendAsync(message, static async (response, token) =>
        {
            using (response)
            {
                var answer = await AppCallbackCalls.ReadUnaryAsync(response, Autogen.InvokeResponse.Parser, MaxGrpcMessageBytes, token).ConfigureAwait(false);
                var http = Answer(answer);
                return new AppCallResult { Response = http, StatusCode = (int)http.StatusCode, Failed = (int)http.StatusCode >= 500 };
            }
        }, cancellationToken);
    }

    private static HttpResponseMessage Answer(UnaryAnswer<Autogen.InvokeResponse> answer)
    {
        if (answer is { Code: StatusCode.OK, Message: { } invoked })
        {
            var ok = new HttpResponseMessage(System.Net.HttpStatusCode.OK) { Content = new ReadOnlyMemoryContent(invoked.Data?.Value.Memory ?? ReadOnlyMemory<byte>.Empty) };
            if (invoked.ContentType is { Length: > 0 } contentType)
            {
                ok.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
            }
            return ok;
        }
        var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, StatusJson))
        {
            writer.WriteStartObject();
            writer.WriteNumber("code", (int)answer.Code);
            writer.WriteString("message", answer.Detail);
            writer.WriteStartArray("details");
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        var failed = new HttpResponseMessage((System.Net.HttpStatusCode)DaprErrors.HttpStatusOf(answer.Code))
        {
            Content = new ByteArrayContent(buffer.ToArray()),
        };
        failed.Content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
        return failed;
    }

    /// <summary>
    /// The body of a call to a gRPC app, read whole before the first attempt (one InvokeRequest carries it, and a retry
    /// sends it again). The tenant's body limit bounds it while it arrives; beyond <see cref="MaxGrpcMessageBytes"/> the
    /// call is refused as the caller's.
    /// </summary>
    private static async ValueTask<ReadOnlyMemory<byte>> ReadWholeAsync(Stream body, CancellationToken cancellationToken)
    {
        var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await body.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > MaxGrpcMessageBytes)
            {
                throw new CallerFaultException($"the request body is larger than {MaxGrpcMessageBytes} bytes, the most a gRPC app is sent", timedOut: false);
            }
            buffer.Write(chunk, 0, read);
        }
        return buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
    }

    private static string? ContentTypeOf(IEnumerable<KeyValuePair<string, Microsoft.Extensions.Primitives.StringValues>> headers)
    {
        foreach (var (name, values) in headers)
        {
            if (name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase))
            {
                return values.ToString();
            }
        }
        return null;
    }

    private static Autogen.HTTPExtension.Types.Verb VerbOf(string verb) => verb switch
    {
        "GET" => Autogen.HTTPExtension.Types.Verb.Get,
        "HEAD" => Autogen.HTTPExtension.Types.Verb.Head,
        "POST" => Autogen.HTTPExtension.Types.Verb.Post,
        "PUT" => Autogen.HTTPExtension.Types.Verb.Put,
        "DELETE" => Autogen.HTTPExtension.Types.Verb.Delete,
        "CONNECT" => Autogen.HTTPExtension.Types.Verb.Connect,
        "OPTIONS" => Autogen.HTTPExtension.Types.Verb.Options,
        "TRACE" => Autogen.HTTPExtension.Types.Verb.Trace,
        "PATCH" => Autogen.HTTPExtension.Types.Verb.Patch,
        _ => Autogen.HTTPExtension.Types.Verb.None,
    };
}

/// <summary>
/// A caller's streamed body sent on as it arrives, flushed whenever the caller has nothing more ready, so that a
/// proxied gRPC stream's messages reach the app when the caller sends them rather than when a buffer fills.
/// </summary>
internal sealed class FlushingStreamContent(Stream source) : HttpContent
{
    protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context, CancellationToken cancellationToken)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            var read = await source.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            while (read > 0)
            {
                await stream.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                var next = source.ReadAsync(buffer, cancellationToken);
                if (!next.IsCompleted)
                {
                    // The caller has sent nothing more yet: what it sent goes now. Otherwise it leaves with the rest
                    // (a unary call's message with its end of stream).
                    await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
                }
                read = await next.ConfigureAwait(false);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
