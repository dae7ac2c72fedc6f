using System.Text.Json;
using Microsoft.AspNetCore.Http;
using SharedRuntime.BuildingBlocks;

namespace SharedRuntime.Http;

/// <summary>Writes Dapr-style errors: <c>{"errorCode","message"}</c> over HTTP, a status with message over gRPC.</summary>
internal static class DaprErrorWriter
{
    public static Task WriteAsync(HttpContext context, DaprApiException error)
    {
        var response = context.Response;
        if (response.HasStarted)
        {
            context.Abort();
            return Task.CompletedTask;
        }
        response.Clear();
        if (error.RetryAfterSeconds is { } retryAfter)
        {
            response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        if (IsGrpc(context))
        {
            // Trailers-only gRPC answer: the status travels in the response headers.
            context.Features.Set(error);
            response.StatusCode = 200;
            response.ContentType = "application/grpc";
            response.Headers["grpc-status"] = ((int)DaprErrors.GrpcStatusOf(error)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            response.Headers["grpc-message"] = Uri.EscapeDataString($"{error.ErrorCode}: {error.Message}");
            response.Headers[DaprErrors.ErrorCodeTrailer] = error.ErrorCode;
            return Task.CompletedTask;
        }
        response.StatusCode = error.HttpStatus;
        response.ContentType = "application/json";
        return response.Body.WriteAsync(Serialize(error)).AsTask();
    }

    public static bool IsGrpc(HttpContext context) =>
        context.Request.ContentType is { } type && type.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase);

    internal static byte[] Serialize(DaprApiException error)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            writer.WriteString("errorCode", error.ErrorCode);
            writer.WriteString("message", error.Message);
            writer.WriteEndObject();
        }
        return stream.ToArray();
    }
}
