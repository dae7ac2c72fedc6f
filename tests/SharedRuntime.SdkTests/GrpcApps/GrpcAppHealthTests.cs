using System.Net;
using System.Text.Json;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.AppChannel;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.SdkTests.GrpcApps;

/// <summary>
/// gRPC apps (appProtocol grpc) whose tenants enable the app health check: the runtime calls their
/// AppCallbackHealthCheck/HealthCheck (Dapr.Protos). While one fails it, calls into it are refused as Dapr refuses them
/// (HTTP 500 ERR_DIRECT_INVOKE, gRPC INTERNAL) and its events wait; another tenant's gRPC app is served all along.
/// </summary>
public sealed class GrpcAppHealthTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);
    private TestRuntime _runtime = null!;
    private GrpcTestApp _ledger = null!;
    private GrpcTestApp _audit = null!;

    public async Task InitializeAsync()
    {
        _ledger = await GrpcTestApp.StartAsync("ledger");
        _audit = await GrpcTestApp.StartAsync("audit");
        _runtime = await TestRuntime.StartAsync(
            GrpcTenant("ledger", _ledger) + GrpcTenant("audit", _audit) +
            Resources.Tenant("orders", "orders-token") +
            Resources.Component("pubsub", "pubsub.in-memory") +
            """
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: entries
            spec:
              pubsubname: pubsub
              topic: entries
              routes:
                default: entries
            scopes: [ledger, audit]

            """);
    }

    private static string GrpcTenant(string appId, GrpcTestApp app) =>
        $"""
        apiVersion: sharedruntime.io/v1alpha1
        kind: Tenant
        metadata:
          name: {appId}
        spec:
          apiToken: {appId}-token
          appEndpoint: {app.Address.ToString().TrimEnd('/')}
          appProtocol: grpc
          enableAppHealthCheck: true
          appHealthProbeInterval: 1s
          appHealthProbeTimeout: 300ms
          appHealthThreshold: 1
        ---

        """;

    public async Task DisposeAsync()
    {
        await _runtime.DisposeAsync();
        await _ledger.DisposeAsync();
        await _audit.DisposeAsync();
    }

    private AppHealthProbes Probes => _runtime.App.Services.GetRequiredService<AppHealthProbes>();

    private Task HealthyAsync(string appId, bool healthy) =>
        Eventually.TrueAsync(() => Task.FromResult(Probes.IsHealthy(appId) == healthy), Wait, $"{appId} is {(healthy ? "healthy" : "unhealthy")}");

    private int Active(string appId) => _runtime.App.Services.GetRequiredService<SubscriptionDelivery>().ActiveFor(appId).Count;

    private Task<HttpResponseMessage> InvokeAsync(string appId)
    {
        var client = _runtime.Client("orders-token");
        return client.PostAsync($"/v1.0/invoke/{appId}/method/entries", new StringContent("{}", System.Text.Encoding.UTF8, "application/json"));
    }

    private async Task PublishAsync(int n)
    {
        using var response = await _runtime.Client("orders-token").PostAsync("/v1.0/publish/pubsub/entries",
            new StringContent($$"""{"n":{{n}}}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
    }

    private static string[] Numbers(GrpcTestApp app) =>
        [.. app.State.Events.Select(e => JsonDocument.Parse(e.Data.ToStringUtf8()).RootElement.GetProperty("n").ToString()).Order()];

    [Fact]
    public async Task AGrpcAppFailingItsHealthCheckIsNotCalledAndGetsItsEventsOnceHealthyWhileAnotherAppIsServed()
    {
        await HealthyAsync("ledger", true);
        await HealthyAsync("audit", true);
        Assert.True(Volatile.Read(ref _ledger.State.HealthChecks) > 0);

        _ledger.State.Unhealthy = true;
        await HealthyAsync("ledger", false);
        Assert.Contains("HealthCheck answered Unavailable: the app is not ready", Probes.Find("ledger")!.Reason);

        using (var refused = await InvokeAsync("ledger"))
        {
            Assert.Equal(HttpStatusCode.InternalServerError, refused.StatusCode);
            var body = await refused.Content.ReadAsStringAsync();
            Assert.Contains("ERR_DIRECT_INVOKE", body);
            Assert.Contains("app is not in a healthy state", body);
        }
        using (var channel = GrpcChannel.ForAddress(_runtime.GrpcAddress))
        {
            var grpc = new Autogen.Dapr.DaprClient(channel);
            var failed = await Assert.ThrowsAsync<RpcException>(() => grpc.InvokeServiceAsync(new Autogen.InvokeServiceRequest
            {
                Id = "ledger",
                Message = new Autogen.InvokeRequest { Method = "entries", HttpExtension = new Autogen.HTTPExtension { Verb = Autogen.HTTPExtension.Types.Verb.Post } },
            }, new Metadata { { "dapr-api-token", "orders-token" } }).ResponseAsync);
            Assert.Equal(StatusCode.Internal, failed.StatusCode);
        }
        Assert.Empty(_ledger.State.Invocations);

        await Eventually.TrueAsync(() => Task.FromResult(Active("ledger") == 0 && Active("audit") == 1), Wait, "ledger's subscription stopped, audit's runs");
        await PublishAsync(1);
        await PublishAsync(2);
        await Eventually.TrueAsync(() => Task.FromResult(_audit.State.Events.Count == 2), Wait, "audit got both events");
        using (var served = await InvokeAsync("audit"))
        {
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        }
        Assert.Empty(_ledger.State.Events);

        _ledger.State.Unhealthy = false;
        await HealthyAsync("ledger", true);
        await Eventually.TrueAsync(() => Task.FromResult(_ledger.State.Events.Count == 2), Wait, "ledger got the events that waited");
        Assert.Equal(["1", "2"], Numbers(_ledger));
        using (var served = await InvokeAsync("ledger"))
        {
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        }
    }
}
