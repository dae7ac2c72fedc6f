using Grpc.Core;
using SharedRuntime.BuildingBlocks;

namespace SharedRuntime.Tests.BuildingBlocks;

public sealed class DaprErrorsTests
{
    public static TheoryData<int, StatusCode> HttpStatuses()
    {
        var data = new TheoryData<int, StatusCode>();
        foreach (var (http, grpc) in DaprErrors.ByHttpStatus)
        {
            data.Add(http, grpc);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(HttpStatuses))]
    public void EveryHttpStatusInTheTableMapsToItsGrpcStatusAndBack(int http, StatusCode grpc)
    {
        Assert.Equal(grpc, DaprErrors.GrpcStatusOf(http));
        Assert.Equal(grpc, DaprErrors.GrpcStatusOf(new DaprApiException(http, "ERR_ANY", "m")));
        // Back: a gRPC status stands for one HTTP status, which maps to it again.
        Assert.Equal(grpc, DaprErrors.GrpcStatusOf(DaprErrors.HttpStatusOf(grpc)));
    }

    [Fact]
    public void EveryErrorCodeInTheTableMapsToItsGrpcStatusAndBack()
    {
        Assert.NotEmpty(DaprErrors.ByErrorCode);
        foreach (var (http, errorCode, grpc) in DaprErrors.ByErrorCode)
        {
            var error = new DaprApiException(http, errorCode, "m");
            Assert.Equal(grpc, DaprErrors.GrpcStatusOf(error));
            Assert.Equal(grpc, DaprErrors.GrpcStatusOf(DaprErrors.HttpStatusOf(grpc)));
            // The same code with another HTTP status (a component that failed to start) is mapped by its status.
            Assert.Equal(StatusCode.Internal, DaprErrors.GrpcStatusOf(new DaprApiException(599, errorCode, "m")));
        }
    }

    [Fact]
    public void EveryGrpcStatusMapsBackToAnHttpStatus()
    {
        foreach (var grpc in Enum.GetValues<StatusCode>())
        {
            var http = DaprErrors.HttpStatusOf(grpc);
            Assert.InRange(http, 200, 599);
            if (DaprErrors.ByHttpStatus.Any(e => e.Grpc == grpc))
            {
                Assert.Equal(grpc, DaprErrors.GrpcStatusOf(http));
            }
            else
            {
                Assert.Equal(500, http);
            }
        }
        Assert.Equal(200, DaprErrors.HttpStatusOf(StatusCode.OK));
        Assert.Equal(429, DaprErrors.HttpStatusOf(StatusCode.ResourceExhausted));
    }

    [Theory]
    [InlineData(405)]
    [InlineData(408)]
    [InlineData(418)]
    [InlineData(422)]
    public void AnUnknown4xxIsTheCallersError(int http) =>
        Assert.Equal(StatusCode.InvalidArgument, DaprErrors.GrpcStatusOf(new DaprApiException(http, "ERR_ANY", "m")));

    [Theory]
    [InlineData(502)]
    [InlineData(505)]
    [InlineData(599)]
    [InlineData(302)]
    public void AnUnknown5xxOrOtherStatusIsInternal(int http) =>
        Assert.Equal(StatusCode.Internal, DaprErrors.GrpcStatusOf(new DaprApiException(http, "ERR_ANY", "m")));

    [Fact]
    public void TenantLimitsAreResourceExhaustedAndTheCauseOverridesTheTable()
    {
        Assert.Equal(StatusCode.ResourceExhausted, DaprErrors.GrpcStatusOf(new DaprApiException(507, "ERR_TENANT_QUOTA_EXCEEDED", "m")));
        Assert.Equal(StatusCode.ResourceExhausted, DaprErrors.GrpcStatusOf(new DaprApiException(413, "ERR_TENANT_BODY_TOO_LARGE", "m")));
        Assert.Equal(StatusCode.ResourceExhausted, DaprErrors.GrpcStatusOf(new DaprApiException(429, "ERR_TENANT_RATE_LIMITED", "m")));
        Assert.Equal(StatusCode.Unavailable, DaprErrors.GrpcStatusOf(new DaprApiException(500, "ERR_DIRECT_INVOKE", "m") { GrpcOverride = (int)StatusCode.Unavailable }));
    }

    [Theory]
    [InlineData(400, StatusCode.InvalidArgument)]
    [InlineData(404, StatusCode.NotFound)]
    [InlineData(409, StatusCode.Aborted)]
    [InlineData(429, StatusCode.ResourceExhausted)]
    [InlineData(499, StatusCode.Cancelled)]
    [InlineData(504, StatusCode.DeadlineExceeded)]
    [InlineData(413, StatusCode.Unknown)]
    [InlineData(418, StatusCode.Unknown)]
    [InlineData(507, StatusCode.Internal)]
    [InlineData(500, StatusCode.Internal)]
    public void AnAppsAnswerIsPassedOnAndIsNeverATenantLimit(int http, StatusCode grpc)
    {
        Assert.Equal(grpc, DaprErrors.GrpcStatusOfAppAnswer(http));
        var error = DaprErrors.AppAnswered(http, "m");
        Assert.Equal(grpc, error.StatusCode);
        Assert.Equal(http.ToString(System.Globalization.CultureInfo.InvariantCulture), error.Trailers.GetValue(DaprErrors.AppStatusTrailer));
    }

    [Fact]
    public void TheRpcErrorCarriesTheCodeInItsMessageAndTrailer()
    {
        var error = DaprErrors.ToRpcException(new DaprApiException(404, "ERR_PUBSUB_NOT_FOUND", "pubsub p not found"));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal("ERR_PUBSUB_NOT_FOUND: pubsub p not found", error.Status.Detail);
        Assert.Equal("ERR_PUBSUB_NOT_FOUND", error.Trailers.GetValue(DaprErrors.ErrorCodeTrailer));
    }
}
