using System.Net;
using Grpc.Core;
using Grpc.Net.Client;
using SharedRuntime.Routing;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>A request reaches a component through its tenant's compiled routes: only its own, and only the current ones.</summary>
public sealed class ComponentRoutingTests
{
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_tenant_without_a_state_store_is_told_none_is_configured_as_dapr_does_over_http_and_grpc()
    {
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("orders", "orders-token") +
            Resources.Tenant("billing", "billing-token") +
            Resources.Component("billing-store", "state.in-memory", scopes: ["billing"]));

        var message = await ErrorAsync(await runtime.Client("orders-token").GetAsync("/v1.0/state/billing-store/k"),
            HttpStatusCode.InternalServerError, "ERR_STATE_STORE_NOT_CONFIGURED");
        Assert.Contains("state store billing-store is not configured", message);

        using var channel = GrpcChannel.ForAddress(runtime.GrpcAddress);
        var grpc = new Autogen.Dapr.DaprClient(channel);
        var refused = await Assert.ThrowsAsync<RpcException>(async () => await grpc.GetStateAsync(
            new Autogen.GetStateRequest { StoreName = "billing-store", Key = "k" },
            new Metadata { { "dapr-api-token", "orders-token" } }, deadline: DateTime.UtcNow.AddSeconds(30)));
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Equal("ERR_STATE_STORE_NOT_CONFIGURED", refused.Trailers.GetValue("dapr-error-code"));

        // The tenant the store is scoped to uses it.
        await StatusAsync(await runtime.Client("billing-token").GetAsync("/v1.0/state/billing-store/k"), HttpStatusCode.NoContent);
    }

    [Fact]
    public async Task A_store_scoped_to_another_tenant_or_of_another_building_block_is_not_found()
    {
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("orders", "orders-token") +
            Resources.Tenant("billing", "billing-token") +
            Resources.Component("orders-store", "state.in-memory", scopes: ["orders"]) +
            Resources.Component("billing-store", "state.in-memory", scopes: ["billing"]) +
            Resources.Component("events", "pubsub.in-memory"));
        var orders = runtime.Client("orders-token");

        await StatusAsync(await orders.PostAsync("/v1.0/state/orders-store", Json("""[{"key":"k","value":1}]""")), HttpStatusCode.NoContent);
        await ErrorAsync(await orders.GetAsync("/v1.0/state/billing-store/k"), HttpStatusCode.BadRequest, "ERR_STATE_STORE_NOT_FOUND");
        await ErrorAsync(await orders.PostAsync("/v1.0/state/billing-store", Json("""[{"key":"k","value":1}]""")), HttpStatusCode.BadRequest, "ERR_STATE_STORE_NOT_FOUND");
        await ErrorAsync(await orders.GetAsync("/v1.0/state/events/k"), HttpStatusCode.BadRequest, "ERR_STATE_STORE_NOT_FOUND");
        await ErrorAsync(await orders.PostAsync("/v1.0/publish/orders-store/t", Json("{}")), HttpStatusCode.NotFound, "ERR_PUBSUB_NOT_FOUND");
        await ErrorAsync(await orders.PostAsync("/v1.0/bindings/orders-store", Json("""{"operation":"create"}""")), HttpStatusCode.NotFound, "ERR_INVOKE_OUTPUT_BINDING");

        // Made-up names find nothing and leave nothing behind: the routes are those the configuration compiled.
        var routes = runtime.Configuration.Current.Tenants["orders"].Routes;
        for (var i = 0; i < 200; i++)
        {
            await ErrorAsync(await orders.GetAsync($"/v1.0/state/made-up-{i}/k"), HttpStatusCode.BadRequest, "ERR_STATE_STORE_NOT_FOUND");
        }
        Assert.Same(routes, runtime.Configuration.Current.Tenants["orders"].Routes);
        Assert.Equal(["events", "orders-store"], routes.All.Select(r => r.Name));
    }

    [Fact]
    public async Task A_reload_keeps_the_routes_of_what_it_leaves_unchanged_and_drops_a_retired_store()
    {
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string>
        {
            ["orders.yaml"] = Resources.Tenant("orders", "orders-token"),
            ["store.yaml"] = Resources.Component("store", "state.in-memory"),
            ["old.yaml"] = Resources.Component("old", "state.in-memory"),
        });
        var orders = runtime.Client("orders-token");
        await StatusAsync(await orders.PostAsync("/v1.0/state/store", Json("""[{"key":"kept","value":1}]""")), HttpStatusCode.NoContent);
        await StatusAsync(await orders.PostAsync("/v1.0/state/old", Json("""[{"key":"gone","value":1}]""")), HttpStatusCode.NoContent);
        var route = runtime.Configuration.Current.Tenants["orders"].Routes.State.Find("store");

        // Another tenant arrives and a store is retired.
        await runtime.WriteResourceAsync("billing.yaml", Resources.Tenant("billing", "billing-token"));
        runtime.DeleteResource("old.yaml");
        await runtime.WaitForConfigurationAsync(s => s.Tenants.ContainsKey("billing") && !s.Components.ContainsKey("old"), Soon);

        Assert.Same(route, runtime.Configuration.Current.Tenants["orders"].Routes.State.Find("store"));
        Assert.Equal("1", await orders.GetStringAsync("/v1.0/state/store/kept"));
        await ErrorAsync(await orders.GetAsync("/v1.0/state/old/gone"), HttpStatusCode.BadRequest, "ERR_STATE_STORE_NOT_FOUND");
        Assert.Null(runtime.Configuration.Current.Tenants["orders"].Routes.Block(BuildingBlock.State).Find("old"));
    }
}
