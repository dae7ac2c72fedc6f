using System.Text;
using Dapr;
using Dapr.Client;
using Grpc.Core;
using Microsoft.AspNetCore.Http;

namespace SharedRuntime.SdkTests;

/// <summary>
/// The unmodified Dapr .NET SDK against SharedRuntime, configured only with the HTTP and gRPC endpoints and a token,
/// for two tenants: everything works for the owner and is invisible or refused for the other.
/// </summary>
public sealed class DaprClientTests : IAsyncLifetime
{
    private TestRuntime _runtime = null!;
    private TestApp _bindingTarget = null!;
    private DaprClient _orders = null!;
    private DaprClient _billing = null!;

    public async Task InitializeAsync()
    {
        _bindingTarget = await TestApp.StartAsync(async context =>
        {
            context.Response.ContentType = "text/plain";
            await context.Response.WriteAsync($"{context.Request.Method} {context.Request.Path}");
        });
        Environment.SetEnvironmentVariable("SDKTEST_SECRET_password", "p4ss");
        _runtime = await TestRuntime.StartAsync(
            Resources.Tenant("orders", "orders-token") +
            Resources.Tenant("billing", "billing-token") +
            Resources.Tenant("limited", "limited-token", "requestsPerSecond: 0.01\nburst: 2") +
            Resources.Component("store", "state.in-memory") +
            Resources.Component("pubsub", "pubsub.in-memory") +
            Resources.Component("hook", "bindings.http", new Dictionary<string, string> { ["url"] = _bindingTarget.Address.ToString() }, ["orders"]) +
            Resources.Component("config", "configuration.in-memory", new Dictionary<string, string> { ["orders||color"] = "blue", ["orders||size"] = "large", ["billing||color"] = "red" }) +
            Resources.Component("locks", "lock.in-memory") +
            Resources.Component("secrets", "secretstores.local.env", new Dictionary<string, string> { ["prefix"] = "SDKTEST_SECRET_" }, ["orders"]));
        _orders = Client("orders-token");
        _billing = Client("billing-token");
    }

    public async Task DisposeAsync()
    {
        _orders.Dispose();
        _billing.Dispose();
        await _runtime.DisposeAsync();
        await _bindingTarget.DisposeAsync();
    }

    private DaprClient Client(string token) => new DaprClientBuilder()
        .UseHttpEndpoint(_runtime.HttpAddress.ToString())
        .UseGrpcEndpoint(_runtime.GrpcAddress.ToString())
        .UseDaprApiToken(token)
        .Build();

    private static StatusCode GrpcStatusOf(Exception ex) =>
        ex is RpcException rpc ? rpc.StatusCode : ex.InnerException is RpcException inner ? inner.StatusCode : throw new Xunit.Sdk.XunitException($"not a gRPC error: {ex}");

    public sealed record Order(string Id, int Total);

    [Fact]
    public async Task WaitsForTheRuntimeAndChecksHealth()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _orders.WaitForSidecarAsync(cts.Token);
        Assert.True(await _orders.CheckHealthAsync());
    }

    [Fact]
    public async Task StateRoundTripWithETagsAndIsolation()
    {
        await _orders.SaveStateAsync("store", "order", new Order("o-1", 42));
        Assert.Equal(new Order("o-1", 42), await _orders.GetStateAsync<Order>("store", "order"));
        Assert.Null(await _billing.GetStateAsync<Order>("store", "order"));

        var (value, etag) = await _orders.GetStateAndETagAsync<Order>("store", "order");
        Assert.Equal(42, value.Total);
        Assert.True(await _orders.TrySaveStateAsync("store", "order", new Order("o-1", 43), etag));
        Assert.False(await _orders.TrySaveStateAsync("store", "order", new Order("o-1", 44), etag));
        Assert.False(await _billing.TrySaveStateAsync("store", "order", new Order("o-1", 0), etag));
        Assert.Equal(43, (await _orders.GetStateAsync<Order>("store", "order")).Total);

        await _billing.DeleteStateAsync("store", "order");
        Assert.NotNull(await _orders.GetStateAsync<Order>("store", "order"));
        await _orders.DeleteStateAsync("store", "order");
        Assert.Null(await _orders.GetStateAsync<Order>("store", "order"));
    }

    [Fact]
    public async Task BulkStateAndTransactions()
    {
        await _orders.ExecuteStateTransactionAsync("store",
        [
            new StateTransactionRequest("a", Encoding.UTF8.GetBytes("\"1\""), StateOperationType.Upsert),
            new StateTransactionRequest("b", Encoding.UTF8.GetBytes("\"2\""), StateOperationType.Upsert),
        ]);
        var items = await _orders.GetBulkStateAsync("store", ["a", "b", "c"], parallelism: 2);
        Assert.Equal("\"1\"", items.Single(i => i.Key == "a").Value);
        Assert.Equal("\"2\"", items.Single(i => i.Key == "b").Value);
        Assert.True(string.IsNullOrEmpty(items.Single(i => i.Key == "c").Value));

        var theirs = await _billing.GetBulkStateAsync("store", ["a", "b"], parallelism: 1);
        Assert.All(theirs, i => Assert.True(string.IsNullOrEmpty(i.Value)));
    }

    [Fact]
    public async Task PublishAndBulkPublish()
    {
        await _orders.PublishEventAsync("pubsub", "orders", new Order("o-2", 7));
        var result = await _orders.BulkPublishEventAsync("pubsub", "orders", new[] { new Order("o-3", 1), new Order("o-4", 2) });
        Assert.Empty(result.FailedEntries);
        var ex = await Assert.ThrowsAnyAsync<Exception>(() => _billing.PublishEventAsync("nope", "orders", new Order("x", 0)));
        Assert.Equal(StatusCode.InvalidArgument, GrpcStatusOf(ex));
    }

    [Fact]
    public async Task OutputBindingIsTheOwnersOnly()
    {
        var response = await _orders.InvokeBindingAsync(new BindingRequest("hook", "post") { Metadata = { ["path"] = "/ping" } });
        Assert.Equal("POST /ping", Encoding.UTF8.GetString(response.Data.Span));
        var scoped = await Assert.ThrowsAnyAsync<Exception>(() => _billing.InvokeBindingAsync(new BindingRequest("hook", "post")));
        var absent = await Assert.ThrowsAnyAsync<Exception>(() => _billing.InvokeBindingAsync(new BindingRequest("no-such-binding", "post")));
        Assert.Equal(StatusCode.NotFound, GrpcStatusOf(scoped));
        Assert.Equal(((RpcException)absent.InnerException!).Status.Detail.Replace("no-such-binding", "hook"), ((RpcException)scoped.InnerException!).Status.Detail);
    }

    [Fact]
    public async Task SecretsAreTheOwnersOnly()
    {
        var secret = await _orders.GetSecretAsync("secrets", "password");
        Assert.Equal("p4ss", secret["password"]);
        var bulk = await _orders.GetBulkSecretAsync("secrets");
        Assert.Equal("p4ss", bulk["password"]["password"]);
        // For the other tenant the store is exactly as absent as one that does not exist.
        var scoped = await Assert.ThrowsAnyAsync<Exception>(() => _billing.GetSecretAsync("secrets", "password"));
        var absent = await Assert.ThrowsAnyAsync<Exception>(() => _billing.GetSecretAsync("no-such-store", "password"));
        Assert.Equal(GrpcStatusOf(absent), GrpcStatusOf(scoped));
        Assert.DoesNotContain("p4ss", scoped.ToString());
    }

    [Fact]
    public async Task ConfigurationItemsAreEachTenantsOwn()
    {
        var orders = await _orders.GetConfiguration("config", ["color", "size"]);
        Assert.Equal("blue", orders.Items["color"].Value);
        Assert.Equal("large", orders.Items["size"].Value);

        var billing = await _billing.GetConfiguration("config", ["color", "size"]);
        Assert.Equal("red", billing.Items["color"].Value);
        Assert.False(billing.Items.ContainsKey("size"));
    }

    [Fact]
    public async Task ConfigurationSubscriptionStartsWithItsIdAndEndsOnUnsubscribe()
    {
        var subscription = await _orders.SubscribeConfiguration("config", ["color"]);
        await using var items = subscription.Source.GetAsyncEnumerator();
        Assert.True(await items.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("blue", items.Current["color"].Value);
        Assert.False(string.IsNullOrEmpty(subscription.Id));
        Assert.False((await _billing.UnsubscribeConfiguration("config", subscription.Id)).Ok);
        Assert.True((await _orders.UnsubscribeConfiguration("config", subscription.Id)).Ok);
    }

    [Fact]
    public async Task GrpcHealthAnswersWithoutAToken()
    {
        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(_runtime.GrpcAddress);
        var health = new global::Grpc.Health.V1.Health.HealthClient(channel);
        var answer = await health.CheckAsync(new global::Grpc.Health.V1.HealthCheckRequest());
        Assert.Equal(global::Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, answer.Status);
    }

#pragma warning disable CS0618, DAPR_DISTRIBUTEDLOCK // the lock API is alpha in the SDK
    [Fact]
    public async Task LocksAreHeldPerTenant()
    {
        Assert.True((await _orders.Lock("locks", "invoice-7", "worker-a", 60)).Success);
        Assert.False((await _orders.Lock("locks", "invoice-7", "worker-b", 60)).Success);

        // The same resource id of another tenant is another lock, and it cannot release the first tenant's.
        Assert.True((await _billing.Lock("locks", "invoice-7", "worker-b", 60)).Success);
        Assert.Equal(LockStatus.LockDoesNotExist, (await _billing.Unlock("locks", "invoice-8", "worker-a")).status);
        Assert.Equal(LockStatus.LockBelongsToOthers, (await _orders.Unlock("locks", "invoice-7", "worker-b")).status);

        Assert.Equal(LockStatus.Success, (await _orders.Unlock("locks", "invoice-7", "worker-a")).status);
        Assert.True((await _orders.Lock("locks", "invoice-7", "worker-b", 60)).Success);
    }
#pragma warning restore CS0618, DAPR_DISTRIBUTEDLOCK

    [Fact]
    public async Task MetadataIsTheCallersView()
    {
        var orders = await _orders.GetMetadataAsync();
        Assert.Equal("orders", orders.Id);
        Assert.Contains(orders.Components, c => c.Name == "hook");
        var billing = await _billing.GetMetadataAsync();
        Assert.Equal("billing", billing.Id);
        Assert.DoesNotContain(billing.Components, c => c.Name == "hook" || c.Name == "secrets");
    }

    [Fact]
    public async Task AWrongTokenIsUnauthenticated()
    {
        using var stranger = Client("not-a-tenant");
        var ex = await Assert.ThrowsAnyAsync<Exception>(() => stranger.GetStateAsync<string>("store", "k"));
        Assert.Equal(StatusCode.Unauthenticated, GrpcStatusOf(ex));
    }

    [Fact]
    public async Task ATenantOverItsRateIsRefusedOverGrpcAndTheOtherIsNot()
    {
        using var limited = Client("limited-token");
        var refused = 0;
        for (var i = 0; i < 6; i++)
        {
            try
            {
                await limited.GetStateAsync<string>("store", "k");
            }
            catch (Exception ex) when (GrpcStatusOf(ex) == StatusCode.ResourceExhausted)
            {
                refused++;
            }
        }
        Assert.True(refused >= 3, $"only {refused} of 6 were refused");
        for (var i = 0; i < 6; i++)
        {
            await _orders.GetStateAsync<string>("store", "k");
        }

        // The same counters as over HTTP: the refusals show in the tenant's metrics.
        using var scraper = new HttpClient { BaseAddress = _runtime.MetricsAddress };
        await Eventually.TrueAsync(async () => (await scraper.GetStringAsync("/metrics")).Contains("app_id=\"limited\",reason=\"rate_limited\""), TimeSpan.FromSeconds(10));
    }
}
