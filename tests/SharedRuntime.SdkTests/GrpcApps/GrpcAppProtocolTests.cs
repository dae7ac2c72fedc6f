using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapr.AppCallback.Autogen.Grpc.v1;
using Dapr.Client;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.SdkTests.GrpcApps;

/// <summary>
/// Tenants whose apps are gRPC servers (appProtocol grpc) with Dapr's AppCallback service: invoked through the Dapr
/// SDK over HTTP and gRPC, given events with SUCCESS, RETRY and DROP answers, asked for their subscriptions. Another
/// tenant its access control denies cannot reach them, and a hung gRPC app holds up nobody else's calls.
/// </summary>
public sealed class GrpcAppProtocolTests : IAsyncLifetime
{
    private TestRuntime _runtime = null!;
    private GrpcTestApp _billing = null!;
    private GrpcTestApp _stuck = null!;
    private DaprClient _orders = null!;
    private DaprClient _shipping = null!;

    public async Task InitializeAsync()
    {
        _billing = await GrpcTestApp.StartAsync("billing");
        _billing.State.Subscriptions.Add(new TopicSubscription { PubsubName = "pubsub", Topic = "invoices", Routes = new TopicRoutes { Default = "invoices" } });
        _billing.State.Subscriptions.Add(new TopicSubscription
        {
            PubsubName = "pubsub", Topic = "receipts", Routes = new TopicRoutes { Default = "receipts" },
            BulkSubscribe = new BulkSubscribeConfig { Enabled = true, MaxMessagesCount = 10, MaxAwaitDurationMs = 200 },
        });
        _stuck = await GrpcTestApp.StartAsync("stuck");
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
              appProtocol: grpc
              appChannel:
                maxConcurrency: 4
                maxQueue: 4
            ---

            """ +
            Resources.Tenant("orders", "orders-token") +
            Resources.Tenant("shipping", "shipping-token") +
            Resources.Component("pubsub", "pubsub.in-memory"));
        _orders = Client("orders-token");
        _shipping = Client("shipping-token");
    }

    public async Task DisposeAsync()
    {
        _orders.Dispose();
        _shipping.Dispose();
        await _runtime.DisposeAsync();
        await _billing.DisposeAsync();
        await _stuck.DisposeAsync();
    }

    private DaprClient Client(string token) => new DaprClientBuilder()
        .UseHttpEndpoint(_runtime.HttpAddress.ToString())
        .UseGrpcEndpoint(_runtime.GrpcAddress.ToString())
        .UseDaprApiToken(token)
        .Build();

    public sealed record Echo(string App, string Method, string Verb, string Query, string ContentType, string Caller, string Body);

    [Fact]
    public async Task AnHttpInvocationReachesOnInvokeWithVerbQueryBodyAndCaller()
    {
        using var http = DaprClient.CreateInvokeHttpClient("billing", _runtime.HttpAddress.ToString().TrimEnd('/'), "orders-token");
        using var response = await http.PutAsync("/invoices/7?draft=true", JsonContent.Create(new { total = 120 }));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var echo = (await response.Content.ReadFromJsonAsync<Echo>())!;
        Assert.Equal(new Echo("billing", "invoices/7", "Put", "draft=true", "application/json; charset=utf-8", "orders", """{"total":120}"""), echo);
        var (_, headers) = Assert.Single(_billing.State.Invocations);
        Assert.Null(headers.GetValue("dapr-api-token")); // the caller's token never reaches the app
    }

    [Fact]
    public async Task TheSdksGrpcInvocationReachesOnInvoke()
    {
        using var channel = GrpcChannel.ForAddress(_runtime.GrpcAddress);
        var client = new Autogen.Dapr.DaprClient(channel);

        var response = await client.InvokeServiceAsync(new Autogen.InvokeServiceRequest
        {
            Id = "billing",
            Message = new Autogen.InvokeRequest
            {
                Method = "invoices",
                ContentType = "text/plain",
                Data = new Google.Protobuf.WellKnownTypes.Any { Value = ByteString.CopyFromUtf8("hello") },
                HttpExtension = new Autogen.HTTPExtension { Verb = Autogen.HTTPExtension.Types.Verb.Post },
            },
        }, new Metadata { { "dapr-api-token", "orders-token" } });

        var echo = JsonSerializer.Deserialize<Echo>(response.Data.Value.ToStringUtf8(), new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        Assert.Equal(new Echo("billing", "invoices", "Post", "", "text/plain", "orders", "hello"), echo);
    }

    [Fact]
    public async Task TheAppsGrpcErrorComesBackAsDaprsHttpStatusWithTheStatusAsJson()
    {
        using var http = DaprClient.CreateInvokeHttpClient("billing", _runtime.HttpAddress.ToString().TrimEnd('/'), "orders-token");

        using var missing = await http.GetAsync("/missing");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using var status = JsonDocument.Parse(await missing.Content.ReadAsStringAsync());
        Assert.Equal((int)StatusCode.NotFound, status.RootElement.GetProperty("code").GetInt32());
        Assert.Equal("no such order", status.RootElement.GetProperty("message").GetString());

        using var crashed = await http.GetAsync("/crash");
        Assert.Equal(HttpStatusCode.InternalServerError, crashed.StatusCode);
    }

    [Fact]
    public async Task AnotherTenantTheAccessControlDeniesCannotInvokeTheGrpcApp()
    {
        using var http = DaprClient.CreateInvokeHttpClient("billing", _runtime.HttpAddress.ToString().TrimEnd('/'), "shipping-token");

        using var denied = await http.GetAsync("/invoices");

        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.Empty(_billing.State.Invocations);
    }

    [Fact]
    public async Task AHungGrpcAppFailsNoneOfAnotherTenantsCalls()
    {
        // The stuck app holds every call slot it has and a full line of waiting calls from orders.
        using var stuckHttp = DaprClient.CreateInvokeHttpClient("stuck", _runtime.HttpAddress.ToString().TrimEnd('/'), "orders-token");
        var hung = Enumerable.Range(0, 8).Select(_ => stuckHttp.GetAsync("/hang")).ToList();
        await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref _stuck.State.Hanging) == 4), TimeSpan.FromSeconds(10));

        using var billingHttp = DaprClient.CreateInvokeHttpClient("billing", _runtime.HttpAddress.ToString().TrimEnd('/'), "orders-token");
        for (var i = 0; i < 20; i++)
        {
            using var response = await billingHttp.GetAsync($"/invoices/{i}").WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        using var busy = await stuckHttp.GetAsync("/hang").WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((HttpStatusCode)429, busy.StatusCode); // orders' own line at the stuck app is full

        _stuck.State.ReleaseHung();
        foreach (var call in hung)
        {
            using var released = await call.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(HttpStatusCode.OK, released.StatusCode);
        }
    }

    [Fact]
    public async Task EventsReachOnTopicEventWithRetryAndDropAsDaprReadsThem()
    {
        // The app shows it is up (as an SDK's wait for its runtime does): the runtime asks for its subscriptions.
        using var billingHttp = new HttpClient { BaseAddress = _runtime.HttpAddress };
        billingHttp.DefaultRequestHeaders.Add("dapr-api-token", "billing-token");
        await Eventually.TrueAsync(async () =>
        {
            using var ready = await billingHttp.GetAsync("/v1.0/healthz/outbound");
            var metadata = await billingHttp.GetStringAsync("/v1.0/metadata");
            return metadata.Contains("\"invoices\"", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(10), "the subscription listed by ListTopicSubscriptions is in place");

        _billing.State.EventAnswers.Enqueue(TopicEventResponse.Types.TopicEventResponseStatus.Retry);
        await _orders.PublishEventAsync("pubsub", "invoices", new { id = "1" });
        await Eventually.TrueAsync(() => Task.FromResult(_billing.State.Events.Count >= 2), TimeSpan.FromSeconds(15), "RETRY has the event delivered again");
        var first = _billing.State.Events.First();
        Assert.Equal("invoices", first.Topic);
        Assert.Equal("pubsub", first.PubsubName);
        Assert.Equal("invoices", first.Path);
        Assert.Equal("com.dapr.event.sent", first.Type);
        Assert.Equal("""{"id":"1"}""", first.Data.ToStringUtf8());
        Assert.Equal(first.Id, _billing.State.Events.Last().Id);

        _billing.State.EventAnswers.Enqueue(TopicEventResponse.Types.TopicEventResponseStatus.Drop);
        await _orders.PublishEventAsync("pubsub", "invoices", new { id = "2" });
        await _orders.PublishEventAsync("pubsub", "invoices", new { id = "3" });
        await Eventually.TrueAsync(() => Task.FromResult(_billing.State.Events.Any(e => e.Data.ToStringUtf8().Contains("\"3\"", StringComparison.Ordinal))),
            TimeSpan.FromSeconds(15));
        Assert.Single(_billing.State.Events, e => e.Data.ToStringUtf8().Contains("\"2\"", StringComparison.Ordinal)); // dropped, not delivered again
    }

    [Fact]
    public async Task ABulkSubscriptionOfAGrpcAppGetsItsBatchesFromOnBulkTopicEvent()
    {
        using var billingHttp = new HttpClient { BaseAddress = _runtime.HttpAddress };
        billingHttp.DefaultRequestHeaders.Add("dapr-api-token", "billing-token");
        await Eventually.TrueAsync(async () =>
        {
            using var ready = await billingHttp.GetAsync("/v1.0/healthz/outbound");
            return (await billingHttp.GetStringAsync("/v1.0/metadata")).Contains("\"receipts\"", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(10), "the bulk subscription listed by ListTopicSubscriptions is in place");

        await _orders.PublishEventAsync("pubsub", "receipts", new { id = "r1" });
        await _orders.PublishEventAsync("pubsub", "receipts", new { id = "r2" });

        await Eventually.TrueAsync(() => Task.FromResult(_billing.State.Batches.Sum(b => b.Entries.Count) >= 2), TimeSpan.FromSeconds(15));
        var entries = _billing.State.Batches.SelectMany(b => b.Entries).ToList();
        Assert.Equal(["{\"id\":\"r1\"}", "{\"id\":\"r2\"}"], entries.Select(e => e.CloudEvent.Data.ToStringUtf8()).Order());
        Assert.All(_billing.State.Batches, b => Assert.Equal(("receipts", "pubsub", "receipts"), (b.Topic, b.PubsubName, b.Path)));
        Assert.DoesNotContain(_billing.State.Events, e => e.Topic == "receipts");
    }
}
