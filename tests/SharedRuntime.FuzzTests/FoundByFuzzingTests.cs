using System.Net;
using System.Text;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Xunit.Abstractions;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.FuzzTests;

/// <summary>One node for the regression tests of what the fuzz run found.</summary>
public sealed class FuzzNodeFixture : IAsyncLifetime
{
    internal FuzzNode Node { get; private set; } = null!;

    public async Task InitializeAsync() => Node = await FuzzNode.StartAsync("[]");

    public async Task DisposeAsync() => await Node.DisposeAsync();
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FuzzCollection
{
    /// <summary>The fuzz run reads the runtime's peak RSS: nothing else runs beside it.</summary>
    public const string Name = "fuzz";
}

/// <summary>
/// Inputs the fuzz run found answered with a 500 or an UNKNOWN status (an exception the runtime did not expect), each
/// now the caller's error with a Dapr error code. Each test sends the input as the attacker and checks the bystander
/// is still served.
/// </summary>
[Collection(FuzzCollection.Name)]
public sealed class FoundByFuzzingTests(FuzzNodeFixture fixture, ITestOutputHelper output) : IClassFixture<FuzzNodeFixture>
{
    private HostileRuntime Runtime => fixture.Node.Runtime;

    [Fact]
    public async Task A_grpc_message_that_is_not_valid_protobuf_is_invalid_argument()
    {
        using var channel = GrpcChannel.ForAddress(Runtime.Process.GrpcAddress);
        // SaveStateRequest with a store name cut short, then a string that is not UTF-8, then a bad wire type.
        foreach (var bytes in new byte[][] { [0x0a, 0x05, (byte)'d', (byte)'u'], [0x0a, 0x02, 0xff, 0xfe], [0x0f] })
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => CallAsync(channel, "SaveState", bytes));
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
            Assert.StartsWith("ERR_MALFORMED_REQUEST", error.Status.Detail, StringComparison.Ordinal);
        }
        await SurvivedAsync();
    }

    [Fact]
    public async Task A_grpc_transaction_operation_without_a_request_is_invalid_argument()
    {
        using var channel = GrpcChannel.ForAddress(Runtime.Process.GrpcAddress);
        var request = new Autogen.ExecuteStateTransactionRequest { StoreName = "statestore" };
        request.Operations.Add(new Autogen.TransactionalStateOperation { OperationType = "upsert" });
        var error = await Assert.ThrowsAsync<RpcException>(() => CallAsync(channel, "ExecuteStateTransaction", request.ToByteArray()));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        await SurvivedAsync();
    }

    [Fact]
    public async Task Two_binary_metadata_values_of_one_key_are_invalid_argument()
    {
        using var channel = GrpcChannel.ForAddress(Runtime.Process.GrpcAddress);
        var request = new Autogen.PublishEventRequest { PubsubName = "pubsub", Topic = "fuzz", Data = ByteString.CopyFromUtf8("{}") };
        var metadata = new Metadata { { "data-bin", Array.Empty<byte>() }, { "data-bin", "x"u8.ToArray() } };
        var error = await Assert.ThrowsAsync<RpcException>(() => CallAsync(channel, "PublishEvent", request.ToByteArray(), metadata));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        await SurvivedAsync();
    }

    [Theory]
    [InlineData("""[{"key":"\uD800","value":1}]""")]
    [InlineData("""[{"key":"k1","value":1,"metadata":{"\uDC00":"x"}}]""")]
    public async Task A_json_body_with_an_unpaired_surrogate_escape_is_malformed(string body)
    {
        using var response = await Runtime.Attacker.PostAsync("/v1.0/state/statestore", new StringContent(body, Encoding.UTF8, "application/json"));
        await HostileRuntime.AssertClientErrorAsync(response, "ERR_MALFORMED_REQUEST");
        await SurvivedAsync();
    }

    [Fact]
    public async Task A_json_body_with_bytes_that_are_not_utf8_is_malformed()
    {
        var body = new ByteArrayContent([.. "[{\"key\":\""u8, 0xa2, 0xbb, .. "\",\"value\":1}]"u8]);
        body.Headers.ContentType = new("application/json");
        using var response = await Runtime.Attacker.PostAsync("/v1.0/state/statestore", body);
        await HostileRuntime.AssertClientErrorAsync(response, "ERR_MALFORMED_REQUEST");
        await SurvivedAsync();
    }

    [Fact]
    public async Task A_binding_request_whose_metadata_cannot_be_sent_as_a_header_is_the_callers_error()
    {
        using var response = await Runtime.Attacker.PostAsync("/v1.0/bindings/appbinding", Json("""{"operation":"post","data":1,"metadata":{"x-note":"caf\u00e9"}}"""));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await HostileRuntime.AssertClientErrorAsync(response, "ERR_INVOKE_OUTPUT_BINDING");
        await SurvivedAsync();
    }

    [Fact]
    public async Task An_unknown_binding_or_operation_is_the_callers_error()
    {
        using (var unknown = await Runtime.Attacker.PostAsync("/v1.0/bindings/nosuch", Json("""{"operation":"create"}""")))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
            await HostileRuntime.AssertClientErrorAsync(unknown, "ERR_INVOKE_OUTPUT_BINDING");
        }
        using (var operation = await Runtime.Attacker.PostAsync("/v1.0/bindings/appbinding", Json("""{"operation":"explode"}""")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, operation.StatusCode);
            await HostileRuntime.AssertClientErrorAsync(operation, "ERR_INVOKE_OUTPUT_BINDING");
        }
        await SurvivedAsync();
    }

    [Fact]
    public async Task A_secret_the_store_does_not_hold_is_not_found()
    {
        using var response = await Runtime.Attacker.GetAsync("/v1.0/secrets/envsecrets/NO_SUCH_SECRET");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        await HostileRuntime.AssertClientErrorAsync(response, "ERR_SECRET_GET");
        await SurvivedAsync();
    }

    [Fact]
    public async Task A_query_on_a_store_without_queries_is_the_callers_error()
    {
        using var response = await Runtime.Attacker.PostAsync("/v1.0-alpha1/state/statestore/query", Json("""{"filter":{"EQ":{"a":1}}}"""));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await HostileRuntime.AssertClientErrorAsync(response, "ERR_STATE_QUERY");
        await SurvivedAsync();
    }

    [Fact]
    public async Task A_transaction_with_an_etag_the_store_cannot_read_is_the_callers_error()
    {
        // SQLite etags are numbers: any other text is an invalid etag, not a store failure.
        using var response = await Runtime.Attacker.PostAsync("/v1.0/state/durable/transaction",
            Json("""{"operations":[{"operation":"delete","request":{"key":"k1","etag":"not-a-number"}}]}"""));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await HostileRuntime.AssertClientErrorAsync(response, "ERR_STATE_TRANSACTION");
        await SurvivedAsync();
    }

    [Fact]
    public async Task A_grpc_invocation_the_app_could_not_be_sent_is_invalid_argument_and_not_the_apps_failure()
    {
        using var channel = GrpcChannel.ForAddress(Runtime.Process.GrpcAddress);
        // More than the app's breakAfterFailures (5) of each: a CONNECT verb, and metadata the app cannot be sent.
        for (var i = 0; i < 8; i++)
        {
            var connect = Invoke(Autogen.HTTPExtension.Types.Verb.Connect);
            var refused = await Assert.ThrowsAsync<RpcException>(() => CallAsync(channel, "InvokeService", connect.ToByteArray()));
            Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);

            // HTTP/2 lets a control character through in a header value; an HTTP/1.1 request to the app cannot carry it.
            var metadata = new Metadata { { "x-note", "a\u0001b" } };
            var post = Invoke(Autogen.HTTPExtension.Types.Verb.Post);
            var unsendable = await Assert.ThrowsAsync<RpcException>(() => CallAsync(channel, "InvokeService", post.ToByteArray(), metadata));
            Assert.Equal(StatusCode.InvalidArgument, unsendable.StatusCode);
        }
        // The bystander's app was never at fault: its circuit is closed and a well-formed call goes through.
        await CallAsync(channel, "InvokeService", Invoke(Autogen.HTTPExtension.Types.Verb.Post).ToByteArray());
        await SurvivedAsync();

        static Autogen.InvokeServiceRequest Invoke(Autogen.HTTPExtension.Types.Verb verb) => new()
        {
            Id = "bystander",
            Message = new Dapr.Client.Autogen.Grpc.v1.InvokeRequest
            {
                Method = "echo",
                Data = Google.Protobuf.WellKnownTypes.Any.Pack(new Google.Protobuf.WellKnownTypes.StringValue { Value = "x" }),
                HttpExtension = new Autogen.HTTPExtension { Verb = verb },
            },
        };
    }

    private async Task SurvivedAsync()
    {
        var peak = await Runtime.AssertSurvivedAsync();
        output.WriteLine($"peak RSS {peak / 1048576} MB");
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static async Task<byte[]> CallAsync(GrpcChannel channel, string method, byte[] message, Metadata? metadata = null)
    {
        metadata ??= [];
        metadata.Add("dapr-api-token", HostileRuntime.AttackerToken);
        var raw = new Method<byte[], byte[]>(MethodType.Unary, "dapr.proto.runtime.v1.Dapr", method,
            Marshallers.Create(static b => b, static b => b), Marshallers.Create(static b => b, static b => b));
        using var call = channel.CreateCallInvoker().AsyncUnaryCall(raw, null,
            new CallOptions(metadata, DateTime.UtcNow.AddSeconds(10)), message);
        return await call.ResponseAsync;
    }
}
