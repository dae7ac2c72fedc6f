namespace SharedRuntime.BuildingBlocks;

/// <summary>
/// An error answered to the app, in Dapr's terms: an HTTP status with a <c>{"errorCode","message"}</c> body, or the
/// matching gRPC status.
/// </summary>
public sealed class DaprApiException(int httpStatus, string errorCode, string message, Exception? inner = null) : Exception(message, inner)
{
    public int HttpStatus { get; } = httpStatus;

    public string ErrorCode { get; } = errorCode;

    /// <summary>Seconds to wait before trying again, for rejections by a tenant limit.</summary>
    public int? RetryAfterSeconds { get; init; }

    /// <summary>gRPC status code name (Grpc.Core.StatusCode value) for this error.</summary>
    public int GrpcStatus => GrpcOverride ?? HttpStatus switch
    {
        400 => 3,   // INVALID_ARGUMENT
        401 => 16,  // UNAUTHENTICATED
        403 => 7,   // PERMISSION_DENIED
        404 => 5,   // NOT_FOUND
        409 => 10,  // ABORTED
        412 => 9,   // FAILED_PRECONDITION
        413 or 429 or 507 => 8, // RESOURCE_EXHAUSTED
        501 => 12,  // UNIMPLEMENTED
        503 => 14,  // UNAVAILABLE
        _ => 13, // INTERNAL
    };

    /// <summary>A gRPC code where Dapr's differs from the one derived from the HTTP status.</summary>
    public int? GrpcOverride { get; init; }
}

internal static class Errors
{
    public static DaprApiException Malformed(string message) => new(400, "ERR_MALFORMED_REQUEST", message);
}
