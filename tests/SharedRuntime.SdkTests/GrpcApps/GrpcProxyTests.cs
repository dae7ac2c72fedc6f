using Dapr.AppCallback.Autogen.Grpc.v1;
using Dapr.Client;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;

namespace SharedRuntime.SdkTests.GrpcApps;

/// <summary>
/// Dapr's gRPC proxying: a caller's own gRPC calls, sent to the runtime's gRPC port with <c>dapr-app-id</c> metadata
/// (the Dapr SDK's invocation invoker), reach the target app as they are: unary and streaming, with the caller's
/// deadline and cancellation carried to the app. A target that is down is UNAVAILABLE; another tenant the access
/// control denies is refused, and a hung app of one tenant fails none of another's proxied calls.
/// </summary>
public sealed class GrpcProxyTests : IAsyncLifetime
{
    private TestRuntime _runtime = null!;
    private GrpcTestApp _billing = null!;
    private GrpcTestApp _stuck = null!;

    public async Task InitializeAsync()
    {
        _billing = await GrpcTestApp.StartAsync("billing");
        _stuck = await GrpcTestApp.StartAsync("stuck");
        var downPort = TestRuntime.FreePorts(1)[0];
        _runtime = await TestRuntime.StartAsync(
            $"""
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: billing
            spec:
              apiToken: billing-token
              appEndpoint: {_billing.Address.ToString().TrimEnd('/')}
              appProtocol: grpc
              config: billing-acl
              appChannel:
                appApiToken: app-secret
            ---
            apiVersion: dapr.io/v1alpha1
            kind: Configuration
            metadata:
              name: billing-acl
            spec:
              accessControl:
                defaultAction: deny
                policies:
                  - appId: orders
                    defaultAction: allow
            ---
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: stuck
            spec:
              apiToken: stuck-token
              appEndpoint: {_stuck.Address.ToString().TrimEnd('/')}
              appProtocol: h2c
              appChannel:
                maxConcurrency: 4
                maxQueue: 4
            ---
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: down
            spec:
              apiToken: down-token
              appEndpoint: http://127.0.0.1:{downPort}
              appProtocol: grpc
            ---

            """ +
            Resources.Tenant("orders", "orders-token") +
            Resources.Tenant("tiny", "tiny-token", limits: "maxRequestBodyBytes: 1024") +
            Resources.Tenant("shipping", "shipping-token") +
            Resources.Tenant("web", "web-token", appEndpoint: _billing.Address.ToString().TrimEnd('/')));
    }

    public async Task DisposeAsync()
    {
        await _runtime.DisposeAsync();
        await _billing.DisposeAsync();
        await _stuck.DisposeAsync();
    }

    private CallInvoker Invoker(string appId, string token) =>
        DaprClient.CreateInvocationInvoker(appId, _runtime.GrpcAddress.ToString().TrimEnd('/'), token);

    private static async Task<T> Within<T>(Task<T> task) => await task.WaitAsync(TimeSpan.FromSeconds(10));

    [Fact]
    public async Task AUnaryCallReachesTheAppWithTheCallerNamedByTheRuntime()
    {
        var reply = await Within(Invoker("billing", "orders-token").AsyncUnaryCall(Echo.Say, null, new CallOptions(), new StringValue { Value = "hi" }).ResponseAsync);

        Assert.Equal("billing:hi:orders", reply.Value);
        var headers = Assert.Single(_billing.State.EchoHeaders);
        Assert.Equal("app-secret", headers.GetValue("dapr-api-token")); // the app's own token, never the caller's
    }

    [Fact]
    public async Task AWholeUnaryMessageOverTheCallersBodyLimitIsRefusedAndNeverReachesTheApp()
    {
        var tiny = Invoker("stuck", "tiny-token");
        Assert.Equal("stuck:small:tiny", (await Within(tiny.AsyncUnaryCall(Echo.Say, null, new CallOptions(), new StringValue { Value = "small" }).ResponseAsync)).Value);
        var reached = _stuck.State.EchoHeaders.Count;

        var error = await Assert.ThrowsAsync<RpcException>(() =>
            Within(tiny.AsyncUnaryCall(Echo.Say, null, new CallOptions(), new StringValue { Value = new string('x', 4096) }).ResponseAsync));

        Assert.True(error.StatusCode == StatusCode.ResourceExhausted, error.ToString()); // 413 ERR_TENANT_BODY_TOO_LARGE
        Assert.Equal(reached, _stuck.State.EchoHeaders.Count);
        // The caller's own refusal: another tenant's proxied call is served as before.
        Assert.Equal("billing:still:orders", (await Within(Invoker("billing", "orders-token").AsyncUnaryCall(Echo.Say, null, new CallOptions(), new StringValue { Value = "still" }).ResponseAsync)).Value);
    }

    [Fact]
    public async Task AClientStreamThatGrowsPastTheCallersBodyLimitIsRefusedAsSuch()
    {
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var call = Invoker("stuck", "tiny-token").AsyncClientStreamingCall(Echo.Join, null, new CallOptions());
            await call.RequestStream.WriteAsync(new StringValue { Value = new string('a', 600) });
            // The call to the app is under way, its body streamed, when the rest goes past the limit.
            var stuck = _runtime.App.Services.GetRequiredService<SharedRuntime.AppChannel.AppChannels>().Find("stuck")!;
            await Eventually.TrueAsync(() => Task.FromResult(stuck.Calls.InFlight == 1), TimeSpan.FromSeconds(10), "the call to the app began");
            try
            {
                await call.RequestStream.WriteAsync(new StringValue { Value = new string('b', 600) });
                await call.RequestStream.CompleteAsync();
            }
            catch (RpcException)
            {
                // the runtime may have ended the call before the client wrote the rest; the status comes from the answer
            }
            await Within(call.ResponseAsync);
        });

        Assert.True(error.StatusCode == StatusCode.ResourceExhausted, error.ToString()); // 413 ERR_TENANT_BODY_TOO_LARGE
        Assert.Contains("ERR_TENANT_BODY_TOO_LARGE", error.Status.Detail, StringComparison.Ordinal);
        Assert.Equal("billing:still:orders", (await Within(Invoker("billing", "orders-token").AsyncUnaryCall(Echo.Say, null, new CallOptions(), new StringValue { Value = "still" }).ResponseAsync)).Value);
    }

    [Fact]
    public async Task ADuplexStreamThatGoesPastTheCallersBodyLimitAfterTheAppAnsweredIsRefusedAsSuch()
    {
        using var call = Invoker("stuck", "tiny-token").AsyncDuplexStreamingCall(Echo.Chat, null, new CallOptions());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await call.RequestStream.WriteAsync(new StringValue { Value = new string('a', 600) });
        // The app answered: its headers and first message are back when the caller's next message goes past the limit.
        Assert.True(await call.ResponseStream.MoveNext(timeout.Token));
        Assert.Equal("re:" + new string('a', 600), call.ResponseStream.Current.Value);

        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            try
            {
                await call.RequestStream.WriteAsync(new StringValue { Value = new string('b', 600) });
            }
            catch (RpcException)
            {
                // the runtime may have ended the call before the client wrote it; the status comes from the answer
            }
            while (await call.ResponseStream.MoveNext(timeout.Token))
            {
            }
        });

        Assert.True(error.StatusCode == StatusCode.ResourceExhausted, error.ToString()); // not the app's stream breaking (Unavailable)
        Assert.Contains("ERR_TENANT_BODY_TOO_LARGE", error.Status.Detail, StringComparison.Ordinal);
        Assert.Equal("billing:still:orders", (await Within(Invoker("billing", "orders-token").AsyncUnaryCall(Echo.Say, null, new CallOptions(), new StringValue { Value = "still" }).ResponseAsync)).Value);
    }

    [Fact]
    public async Task TheAppsOwnAppCallbackServiceCanBeCalledThroughTheProxy()
    {
        // Dapr.Protos has the service's server side only: the method, as its client would name it.
        var healthCheck = new Method<Empty, HealthCheckResponse>(MethodType.Unary, "dapr.proto.runtime.v1.AppCallbackHealthCheck", "HealthCheck",
            Marshallers.Create<Empty>(m => m.ToByteArray(), Empty.Parser.ParseFrom),
            Marshallers.Create<HealthCheckResponse>(m => m.ToByteArray(), HealthCheckResponse.Parser.ParseFrom));

        var health = await Within(Invoker("billing", "orders-token").AsyncUnaryCall(healthCheck, null, new CallOptions(), new Empty()).ResponseAsync);

        Assert.NotNull(health);
    }

    [Fact]
    public async Task AServerStreamComesBackMessageByMessage()
    {
        using var call = Invoker("billing", "orders-token").AsyncServerStreamingCall(Echo.Count, null, new CallOptions(), new StringValue { Value = "50" });
        var received = new List<string>();
        await foreach (var message in call.ResponseStream.ReadAllAsync().WithCancellation(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token))
        {
            received.Add(message.Value);
        }

        Assert.Equal(Enumerable.Range(1, 50).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)), received);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task AClientStreamReachesTheAppWhole()
    {
        using var call = Invoker("billing", "orders-token").AsyncClientStreamingCall(Echo.Join, null, new CallOptions());
        foreach (var part in new[] { "a", "b", "c" })
        {
            await call.RequestStream.WriteAsync(new StringValue { Value = part });
        }
        await call.RequestStream.CompleteAsync();

        Assert.Equal("a,b,c", (await Within(call.ResponseAsync)).Value);
    }

    [Fact]
    public async Task ADuplexStreamIsAnsweredMessageByMessageBeforeTheCallerSendsTheNext()
    {
        using var call = Invoker("billing", "orders-token").AsyncDuplexStreamingCall(Echo.Chat, null, new CallOptions());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        for (var i = 0; i < 5; i++)
        {
            await call.RequestStream.WriteAsync(new StringValue { Value = $"m{i}" });
            Assert.True(await call.ResponseStream.MoveNext(timeout.Token));
            Assert.Equal($"re:m{i}", call.ResponseStream.Current.Value);
        }
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext(timeout.Token));
    }

    [Fact]
    public async Task TheCallersDeadlineEndsTheCallAndReachesTheApp()
    {
        var call = Invoker("billing", "orders-token").AsyncUnaryCall(Echo.Hang, null, new CallOptions(deadline: DateTime.UtcNow.AddMilliseconds(500)), new StringValue { Value = "x" });

        var error = await Assert.ThrowsAsync<RpcException>(() => Within(call.ResponseAsync));

        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
        await _billing.State.CancelSeen.Task.WaitAsync(TimeSpan.FromSeconds(10)); // the app's call was ended too
    }

    [Fact]
    public async Task ACallerThatCancelsCancelsTheAppsCall()
    {
        using var cancel = new CancellationTokenSource();
        var call = Invoker("billing", "orders-token").AsyncUnaryCall(Echo.Hang, null, new CallOptions(cancellationToken: cancel.Token), new StringValue { Value = "x" });
        await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref _billing.State.Hanging) == 1), TimeSpan.FromSeconds(10));

        cancel.Cancel();

        var error = await Assert.ThrowsAsync<RpcException>(() => Within(call.ResponseAsync));
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
        await _billing.State.CancelSeen.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task ATargetThatIsDownIsUnavailable()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() =>
            Within(Invoker("down", "orders-token").AsyncUnaryCall(Echo.Say, null, new CallOptions(), new StringValue { Value = "hi" }).ResponseAsync));

        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }

    [Fact]
    public async Task AnotherTenantTheAccessControlDeniesCannotProxyIntoTheApp()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() =>
            Within(Invoker("billing", "shipping-token").AsyncUnaryCall(Echo.Say, null, new CallOptions(), new StringValue { Value = "hi" }).ResponseAsync));

        Assert.Equal(StatusCode.PermissionDenied, error.StatusCode);
        Assert.Empty(_billing.State.EchoHeaders);
    }

    [Fact]
    public async Task ACallWithoutAnAppIdOrToAnHttpAppIsRefused()
    {
        using var channel = GrpcChannel.ForAddress(_runtime.GrpcAddress);
        var anonymous = channel.CreateCallInvoker();
        var unknown = await Assert.ThrowsAsync<RpcException>(() => Within(anonymous.AsyncUnaryCall(Echo.Say, null,
            new CallOptions(new Metadata { { "dapr-api-token", "orders-token" } }), new StringValue { Value = "hi" }).ResponseAsync));
        Assert.Equal(StatusCode.Unimplemented, unknown.StatusCode);

        var http = await Assert.ThrowsAsync<RpcException>(() =>
            Within(Invoker("web", "orders-token").AsyncUnaryCall(Echo.Say, null, new CallOptions(), new StringValue { Value = "hi" }).ResponseAsync));
        Assert.Equal(StatusCode.FailedPrecondition, http.StatusCode);
    }

    [Fact]
    public async Task AHungAppFailsNoneOfAnotherTenantsProxiedCalls()
    {
        var stuck = Invoker("stuck", "orders-token");
        using var release = new CancellationTokenSource();
        var hung = Enumerable.Range(0, 8)
            .Select(_ => stuck.AsyncUnaryCall(Echo.Hang, null, new CallOptions(cancellationToken: release.Token), new StringValue { Value = "x" }))
            .ToList();
        await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref _stuck.State.Hanging) == 4), TimeSpan.FromSeconds(10));

        var billing = Invoker("billing", "orders-token");
        for (var i = 0; i < 20; i++)
        {
            var reply = await Within(billing.AsyncUnaryCall(Echo.Say, null, new CallOptions(), new StringValue { Value = $"{i}" }).ResponseAsync);
            Assert.Equal($"billing:{i}:orders", reply.Value);
        }
        var busy = await Assert.ThrowsAsync<RpcException>(() =>
            Within(stuck.AsyncUnaryCall(Echo.Say, null, new CallOptions(), new StringValue { Value = "x" }).ResponseAsync));
        Assert.Equal(StatusCode.ResourceExhausted, busy.StatusCode); // orders' own line at the stuck app is full

        release.Cancel();
        foreach (var call in hung)
        {
            await Assert.ThrowsAsync<RpcException>(() => Within(call.ResponseAsync));
            call.Dispose();
        }
        await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref _stuck.State.Hanging) == 0), TimeSpan.FromSeconds(10), "the app's hung calls were cancelled");
    }
}
