using System.Collections.Frozen;
using System.Globalization;
using Grpc.Core;

namespace SharedRuntime.BuildingBlocks;

/// <summary>
/// The one table from a Dapr error to its gRPC status. A <see cref="DaprApiException"/> is answered over HTTP with its
/// status and over gRPC with the status this table gives it: by error code where Dapr's gRPC API answers that code with
/// another status than its HTTP status implies, otherwise by HTTP status. Metrics label a gRPC outcome with the HTTP
/// status, so the table also maps a gRPC status back.
/// </summary>
internal static class DaprErrors
{
    /// <summary>The trailer naming the Dapr error code of a gRPC error.</summary>
    public const string ErrorCodeTrailer = "dapr-error-code";

    /// <summary>The trailer with the status an app answered InvokeService with.</summary>
    public const string AppStatusTrailer = "dapr-http-status";

    /// <summary>
    /// HTTP status to gRPC status. A gRPC status maps back to the first HTTP status listed for it.
    /// </summary>
    internal static readonly (int Http, StatusCode Grpc)[] ByHttpStatus =
    [
        (200, StatusCode.OK),
        (400, StatusCode.InvalidArgument),
        (401, StatusCode.Unauthenticated),
        (403, StatusCode.PermissionDenied),
        (404, StatusCode.NotFound),
        (409, StatusCode.Aborted),
        (412, StatusCode.FailedPrecondition),
        (429, StatusCode.ResourceExhausted),
        (413, StatusCode.ResourceExhausted),
        (507, StatusCode.ResourceExhausted),
        (499, StatusCode.Cancelled),
        (500, StatusCode.Internal),
        (501, StatusCode.Unimplemented),
        (503, StatusCode.Unavailable),
        (504, StatusCode.DeadlineExceeded),
    ];

    /// <summary>
    /// Dapr errors whose gRPC status is not the one of their HTTP status (Dapr's gRPC API answers them so): keyed by
    /// HTTP status and error code, since one code can mean two things (a missing store, a store that failed to start).
    /// </summary>
    internal static readonly (int Http, string ErrorCode, StatusCode Grpc)[] ByErrorCode =
    [
        (400, "ERR_PUBSUB_NOT_CONFIGURED", StatusCode.FailedPrecondition),
        (404, "ERR_PUBSUB_EMPTY", StatusCode.InvalidArgument),
        (404, "ERR_PUBSUB_NOT_FOUND", StatusCode.InvalidArgument),
        (404, "ERR_TOPIC_NAME_EMPTY", StatusCode.InvalidArgument),
        (500, "ERR_STATE_STORE_NOT_CONFIGURED", StatusCode.FailedPrecondition),
        (500, "ERR_SECRET_STORES_NOT_CONFIGURED", StatusCode.FailedPrecondition),
        (401, "ERR_SECRET_STORE_NOT_FOUND", StatusCode.InvalidArgument),
        (500, "ERR_CONFIGURATION_STORE_NOT_CONFIGURED", StatusCode.FailedPrecondition),
        (500, "ERR_LOCK_STORE_NOT_CONFIGURED", StatusCode.FailedPrecondition),
    ];

    private static readonly FrozenDictionary<int, StatusCode> GrpcByHttp =
        ByHttpStatus.ToFrozenDictionary(static e => e.Http, static e => e.Grpc);

    private static readonly FrozenDictionary<StatusCode, int> HttpByGrpc =
        ByHttpStatus.DistinctBy(static e => e.Grpc).ToFrozenDictionary(static e => e.Grpc, static e => e.Http);

    private static readonly FrozenDictionary<(int, string), StatusCode> GrpcByErrorCode =
        ByErrorCode.ToFrozenDictionary(static e => (e.Http, e.ErrorCode), static e => e.Grpc);

    /// <summary>
    /// The gRPC status of a Dapr error: the error's own <see cref="DaprApiException.GrpcOverride"/> where its cause
    /// decides (an app that cannot be reached is UNAVAILABLE, one that timed out DEADLINE_EXCEEDED), else the table.
    /// </summary>
    public static StatusCode GrpcStatusOf(DaprApiException error) =>
        error.GrpcOverride is { } cause ? (StatusCode)cause
        : GrpcByErrorCode.TryGetValue((error.HttpStatus, error.ErrorCode), out var byCode) ? byCode
        : GrpcStatusOf(error.HttpStatus);

    /// <summary>The gRPC status of an HTTP status: the table's, else INVALID_ARGUMENT for 4xx and INTERNAL otherwise.</summary>
    public static StatusCode GrpcStatusOf(int httpStatus) =>
        GrpcByHttp.TryGetValue(httpStatus, out var status) ? status
        : httpStatus is >= 400 and < 500 ? StatusCode.InvalidArgument
        : StatusCode.Internal;

    /// <summary>
    /// The gRPC status of an app's non-2xx answer to InvokeService. The app's status is passed on, not a Dapr error:
    /// 413 and 507 are the app's, not a tenant limit of the runtime, and a status the table does not know is UNKNOWN
    /// (INTERNAL for 5xx).
    /// </summary>
    public static StatusCode GrpcStatusOfAppAnswer(int httpStatus) =>
        httpStatus is not (413 or 507) && GrpcByHttp.TryGetValue(httpStatus, out var status) ? status
        : httpStatus >= 500 ? StatusCode.Internal
        : StatusCode.Unknown;

    /// <summary>The HTTP status a gRPC status stands for, as metrics label it: the table's, else 500.</summary>
    public static int HttpStatusOf(StatusCode status) => HttpByGrpc.TryGetValue(status, out var http) ? http : 500;

    /// <summary>A Dapr error as the gRPC error answered for it: its status, <c>ERRORCODE: message</c>, and the code as a trailer.</summary>
    public static RpcException ToRpcException(DaprApiException error) =>
        new(new Status(GrpcStatusOf(error), $"{error.ErrorCode}: {error.Message}"), new Metadata { { ErrorCodeTrailer, error.ErrorCode } });

    /// <summary>An app's non-2xx answer to InvokeService as the gRPC error answered for it, with the app's status as a trailer.</summary>
    public static RpcException AppAnswered(int httpStatus, string message) =>
        new(new Status(GrpcStatusOfAppAnswer(httpStatus), message),
            new Metadata { { AppStatusTrailer, httpStatus.ToString(CultureInfo.InvariantCulture) } });
}
