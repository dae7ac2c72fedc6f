using System.Buffers.Binary;
using System.Globalization;
using System.Net.Http.Headers;
using Google.Protobuf;
using Grpc.Core;

namespace SharedRuntime.AppChannel;

/// <summary>
/// Unary calls to an app's AppCallback gRPC services (appProtocol <c>grpc</c>), made as plain HTTP/2 requests through
/// the app's own channel, so they take its slots, connections, timeout and breaker like any other call. What the app
/// answers is bounded before it is parsed: one message of at most the given size, identity-encoded.
/// </summary>
internal static class AppCallbackCalls
{
    public const string AppCallback = "dapr.proto.runtime.v1.AppCallback";
    public const string HealthCheck = "dapr.proto.runtime.v1.AppCallbackHealthCheck";
    public const string Alpha = "dapr.proto.runtime.v1.AppCallbackAlpha";

    private static readonly MediaTypeHeaderValue GrpcType = new("application/grpc");

    /// <summary>A POST of <paramref name="message"/> to <c>/{service}/{method}</c> at the app, with the app's token when it has one.</summary>
    public static HttpRequestMessage Request(AppChannel channel, string service, string method, IMessage message)
    {
        var size = message.CalculateSize();
        var framed = new byte[5 + size];
        BinaryPrimitives.WriteUInt32BigEndian(framed.AsSpan(1, 4), (uint)size);
        message.WriteTo(framed.AsSpan(5));
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"{channel.Endpoint.OriginalString}/{service}/{method}", UriKind.Absolute))
        {
            Content = new ByteArrayContent(framed),
        };
        request.Content.Headers.ContentType = GrpcType;
        request.Headers.TryAddWithoutValidation("te", "trailers");
        if (channel.Config.AppApiToken is { } appToken)
        {
            request.Headers.TryAddWithoutValidation("dapr-api-token", appToken);
        }
        return request;
    }

    /// <summary>
    /// The app's answer to a unary call: its gRPC status (from the trailers, or the headers of a trailers-only answer),
    /// and its message when the status is OK. An answer that is not gRPC, is compressed, holds more than one message
    /// or a message larger than <paramref name="maxBytes"/> is the app's failure (INTERNAL or RESOURCE_EXHAUSTED); the
    /// rest of an oversized answer is not read.
    /// </summary>
    public static async ValueTask<UnaryAnswer<T>> ReadUnaryAsync<T>(HttpResponseMessage response, MessageParser<T> parser, int maxBytes, CancellationToken cancellationToken)
        where T : IMessage<T>
    {
        if (!response.IsSuccessStatusCode)
        {
            return new(StatusOfHttp((int)response.StatusCode), $"the app answered HTTP {(int)response.StatusCode}, not gRPC", default);
        }
        if (Status(response.Headers) is { } trailersOnly)
        {
            return new(trailersOnly.StatusCode, trailersOnly.Detail, default);
        }
        if (response.Content.Headers.ContentType?.MediaType is not { } media || !media.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase))
        {
            return new(StatusCode.Internal, "the app's answer is not gRPC (content type application/grpc)", default);
        }
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            var prefix = new byte[5];
            var got = await stream.ReadAtLeastAsync(prefix, 5, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            T? message = default;
            if (got == 5)
            {
                if (prefix[0] != 0)
                {
                    return new(StatusCode.Internal, "the app answered a compressed message, which was not asked for", default);
                }
                var length = BinaryPrimitives.ReadUInt32BigEndian(prefix.AsSpan(1));
                if (length > (uint)maxBytes)
                {
                    return new(StatusCode.ResourceExhausted, $"the app's answer of {length} bytes is larger than {maxBytes} bytes", default);
                }
                var body = new byte[length];
                if (await stream.ReadAtLeastAsync(body, body.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false) < body.Length)
                {
                    return new(StatusCode.Internal, "the app's answer ended inside its message", default);
                }
                if (await stream.ReadAsync(prefix.AsMemory(0, 1), cancellationToken).ConfigureAwait(false) != 0)
                {
                    return new(StatusCode.Internal, "the app answered more than one message to a unary call", default);
                }
                try
                {
                    message = parser.ParseFrom(body);
                }
                catch (InvalidProtocolBufferException ex)
                {
                    return new(StatusCode.Internal, $"the app's answer is not a valid message: {ex.Message}", default);
                }
            }
            else if (got > 0)
            {
                return new(StatusCode.Internal, "the app's answer ended inside a message prefix", default);
            }
            var status = Status(response.TrailingHeaders) ?? new Status(StatusCode.Internal, "the app's answer has no grpc-status");
            if (status.StatusCode == StatusCode.OK && message is null)
            {
                return new(StatusCode.Internal, "the app answered OK without a message", default);
            }
            return new(status.StatusCode, status.Detail, status.StatusCode == StatusCode.OK ? message : default);
        }
    }

    /// <summary>The gRPC status carried by <paramref name="headers"/>, or null when they carry none.</summary>
    internal static Status? Status(HttpHeaders headers)
    {
        if (!headers.NonValidated.TryGetValues("grpc-status", out var values))
        {
            return null;
        }
        var code = int.TryParse(values.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) ? (StatusCode)parsed : StatusCode.Unknown;
        var detail = headers.NonValidated.TryGetValues("grpc-message", out var message) ? Uri.UnescapeDataString(Shorten(message.ToString())) : "";
        return new Status(code, detail);
    }

    /// <summary>The gRPC status an HTTP status stands for, as gRPC clients read a non-200 answer.</summary>
    public static StatusCode StatusOfHttp(int status) => status switch
    {
        400 => StatusCode.Internal,
        401 => StatusCode.Unauthenticated,
        403 => StatusCode.PermissionDenied,
        404 => StatusCode.Unimplemented,
        429 or 502 or 503 or 504 => StatusCode.Unavailable,
        _ => StatusCode.Unknown,
    };

    private static string Shorten(string text) => text.Length <= 1024 ? text : text[..1024];
}

/// <summary>A unary call's outcome: the app's gRPC status, its message, and the answer when the status is OK.</summary>
internal readonly record struct UnaryAnswer<T>(StatusCode Code, string Detail, T? Message);
