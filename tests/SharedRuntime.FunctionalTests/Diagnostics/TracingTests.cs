using System.Collections.Concurrent;
using System.Net;
using Grpc.Core;
using Grpc.Net.Client;
using SharedRuntime.FunctionalTests.AppChannel;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.FunctionalTests.Diagnostics;

/// <summary>
/// Spans reach an OTLP collector: one per API call over HTTP and gRPC and one per delivery, with app_id, a delivery
/// parented on the publishing call across the broker, and each tenant sampled by its own Configuration.
/// </summary>
public sealed class TracingTests
{
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(20);

    private static string Config(string name, string rate) => $"""
        apiVersion: dapr.io/v1alpha1
        kind: Configuration
        metadata:
          name: {name}
        spec:
          tracing:
            samplingRate: "{rate}"
        ---

        """;

    private static async Task<ReceivedSpan> SpanAsync(OtlpReceiver receiver, Func<ReceivedSpan, bool> match, string what)
    {
        ReceivedSpan? found = null;
        await Eventually.TrueAsync(() => Task.FromResult((found = receiver.Spans.FirstOrDefault(match)) is not null), Soon, what);
        return found!;
    }

    [Fact]
    public async Task Spans_are_exported_per_tenant_rate_and_a_delivery_is_the_child_of_the_publishing_call()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var deliveries = new ConcurrentQueue<(string AppId, string TraceParent)>();
        Task<TestApp> SubscriberAsync(string appId) => TestApp.StartAsync(context =>
        {
            deliveries.Enqueue((appId, context.Request.Headers["traceparent"].ToString()));
            context.Response.StatusCode = 200;
            return Task.CompletedTask;
        });
        await using var subApp = await SubscriberAsync("sub");
        await using var quietApp = await SubscriberAsync("quiet");
        await using var runtime = await TestRuntime.StartAsync(
            AppChannel.AppResources.InMemoryPubSub("pubsub") +
            Resources.Component("store", "state.in-memory") +
            AppResources.Tenant("pub", "pub-token", null, "config: pub-config") +
            AppResources.Tenant("sub", "sub-token", subApp.Address, "config: sub-config") +
            AppResources.Tenant("quiet", "quiet-token", quietApp.Address, "config: quiet-config") +
            Config("pub-config", "1") + Config("sub-config", "1") + Config("quiet-config", "0") +
            AppResources.Subscription("orders-sub", "pubsub", "orders", "default: /orders", scopes: ["sub", "quiet"]),
            o => o with { OtlpEndpoint = receiver.Endpoint, OtlpHttpProtobuf = true });
        using var channel = GrpcChannel.ForAddress(runtime.GrpcAddress);
        var grpc = new Autogen.Dapr.DaprClient(channel);
        var deadline = DateTime.UtcNow.AddSeconds(30);

        // The quiet tenant (samplingRate 0) calls over HTTP and gRPC and publishes: none of it is traced.
        var quiet = runtime.Client("quiet-token");
        await StatusAsync(await quiet.GetAsync("/v1.0/state/store/k"), HttpStatusCode.NoContent);
        await grpc.GetStateAsync(new Autogen.GetStateRequest { StoreName = "store", Key = "k" }, new Metadata { { "dapr-api-token", "quiet-token" } }, deadline);

        await Eventually.TrueAsync(() => Task.FromResult(
            runtime.App.Services.GetService(typeof(SharedRuntime.AppChannel.SubscriptionDelivery)) is SharedRuntime.AppChannel.SubscriptionDelivery d &&
            d.ActiveFor("sub").Count > 0 && d.ActiveFor("quiet").Count > 0), Soon, "subscriptions active");

        // pub publishes within a trace its caller started.
        var traceId = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
        const string callerSpan = "00f067aa0ba902b7";
        using (var publish = new HttpRequestMessage(HttpMethod.Post, "/v1.0/publish/pubsub/orders") { Content = Json("""{"n":1}""") })
        {
            publish.Headers.Add("traceparent", $"00-{traceId}-{callerSpan}-01");
            await StatusAsync(await runtime.Client("pub-token").SendAsync(publish), HttpStatusCode.NoContent);
        }

        var publishSpan = await SpanAsync(receiver, s => s.TraceId == traceId && s.AppId == "pub", "the publishing call's span");
        Assert.Equal(callerSpan, publishSpan.ParentSpanId);
        Assert.Equal("POST /v1.0/publish/{pubsubName}/{**topic}", publishSpan.Name);
        Assert.Equal(2, publishSpan.Kind); // SERVER
        Assert.Equal("publish", publishSpan.Attributes["dapr.api"]);

        var deliverySpan = await SpanAsync(receiver, s => s.TraceId == traceId && s.AppId == "sub", "the delivery's span");
        Assert.Equal(publishSpan.SpanId, deliverySpan.ParentSpanId);
        Assert.Equal(3, deliverySpan.Kind); // CLIENT
        Assert.Equal("pubsub/orders", deliverySpan.Name);
        // The app receives the delivery span as its parent.
        Assert.Contains(deliveries, d => d.AppId == "sub" && d.TraceParent == $"00-{traceId}-{deliverySpan.SpanId}-01");

        // quiet got the event too, untraced, and has acknowledged it.
        await Eventually.TrueAsync(() => Task.FromResult(deliveries.Any(d => d.AppId == "quiet") &&
            ((SharedRuntime.Components.PubSub.InMemoryBroker)runtime.Configuration.Current.Components["pubsub"].Instance!).Unacknowledged("orders", "quiet") == 0),
            Soon, "quiet acknowledged the event");

        // A gRPC call without a trace starts one; its span comes after everything quiet did.
        await grpc.GetStateAsync(new Autogen.GetStateRequest { StoreName = "store", Key = "k" }, new Metadata { { "dapr-api-token", "pub-token" } }, deadline);
        var grpcSpan = await SpanAsync(receiver, s => s.AppId == "pub" && s.Name == "/dapr.proto.runtime.v1.Dapr/GetState", "the gRPC call's span");
        Assert.Equal("", grpcSpan.ParentSpanId);
        Assert.Equal("state", grpcSpan.Attributes["dapr.api"]);

        Assert.DoesNotContain(receiver.Spans, s => s.AppId == "quiet");
    }

    [Fact]
    public async Task An_invocation_is_a_client_span_under_the_calling_api_span_and_the_target_receives_it()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var received = new ConcurrentQueue<string>();
        await using var target = await TestApp.StartAsync(context =>
        {
            received.Enqueue(context.Request.Headers["traceparent"].ToString());
            context.Response.StatusCode = 200;
            return Task.CompletedTask;
        });
        await using var runtime = await TestRuntime.StartAsync(
            AppResources.Tenant("caller", "caller-token", null) +
            AppResources.Tenant("billing", "billing-token", target.Address),
            o => o with { OtlpEndpoint = receiver.Endpoint, OtlpHttpProtobuf = true });

        await StatusAsync(await runtime.Client("caller-token").GetAsync("/v1.0/invoke/billing/method/invoices/7"), HttpStatusCode.OK);

        var apiSpan = await SpanAsync(receiver, s => s.AppId == "caller" && s.Attributes.GetValueOrDefault("dapr.api") == "invoke", "the invoke call's span");
        var callSpan = await SpanAsync(receiver, s => s.Name == "CallLocal/billing/invoices/7", "the invocation's span");
        Assert.Equal(apiSpan.TraceId, callSpan.TraceId);
        Assert.Equal(apiSpan.SpanId, callSpan.ParentSpanId);
        Assert.Equal("caller", callSpan.AppId);
        Assert.Equal("billing", callSpan.Attributes["dapr.callee_app_id"]);
        Assert.Equal($"00-{callSpan.TraceId}-{callSpan.SpanId}-01", Assert.Single(received));
    }
}
