namespace SharedRuntime.BuildingBlocks;

/// <summary>
/// An error answered to the app, in Dapr's terms: an HTTP status with a <c>{"errorCode","message"}</c> body, or the
/// gRPC status <see cref="DaprErrors"/> maps it to.
/// </summary>
internal sealed class DaprApiException(int httpStatus, string errorCode, string message, Exception? inner = null) : Exception(message, inner)
{
    public int HttpStatus { get; } = httpStatus;

    public string ErrorCode { get; } = errorCode;

    /// <summary>Seconds to wait before trying again, for rejections by a tenant limit.</summary>
    public int? RetryAfterSeconds { get; init; }

    /// <summary>
    /// The gRPC status (a Grpc.Core.StatusCode value) where this error's cause decides it rather than its HTTP status and
    /// code; <see cref="DaprErrors"/> maps every other error.
    /// </summary>
    public int? GrpcOverride { get; init; }
}

internal static class Errors
{
    public static DaprApiException Malformed(string message) => new(400, "ERR_MALFORMED_REQUEST", message);
}
