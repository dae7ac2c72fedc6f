using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SharedRuntime.AppChannel;
using SharedRuntime.Components;
using SharedRuntime.Configuration;
using SharedRuntime.Metrics;
using SharedRuntime.Routing;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Tests.Routing;

/// <summary>Each tenant's routes are compiled with the snapshot: what a reload keeps, what it rebuilds, what a tenant can reach.</summary>
public sealed class TenantRoutesTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new();
    private ServiceProvider _services = null!;
    private RuntimeConfiguration _configuration = null!;

    public Task InitializeAsync()
    {
        _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        _configuration = new RuntimeConfiguration([new FakeFactory()], _services, _time, NullLogger<RuntimeConfiguration>.Instance,
            new RuntimeMetrics(_services.GetRequiredService<IMeterFactory>()), TenantLimits.Defaults)
        {
            OutboundPipelines = new OutboundPipelines(_time),
            DrainTime = TimeSpan.Zero,
        };
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _configuration.DisposeAsync();
        await _services.DisposeAsync();
    }

    private Task ApplyAsync(string yaml) =>
        _configuration.ApplyAsync(ResourceParser.Parse(ResourceReader.ReadText("resources.yaml", yaml), _ => null), "test", CancellationToken.None);

    private ComponentRoute? Route(string appId, string block, string name) =>
        _configuration.Current.Tenants[appId].Routes.Block(block).Find(name);

    private static string Breaker(string name = "orders-breaker", int retries = 0) => $"""
        apiVersion: dapr.io/v1alpha1
        kind: Resiliency
        metadata:
          name: {name}
        spec:
          policies:
            retries:
              again:
                policy: constant
                duration: 10ms
                maxRetries: {retries}
            circuitBreakers:
              cb:
                timeout: 60s
                trip: consecutiveFailures >= 2
          targets:
            components:
              store:
                outbound:
                  retry: again
                  circuitBreaker: cb
        scopes: [orders]
        ---

        """;

    private static string Base(string billingLimits = "burst: 10", string otherValue = "1", string storeValue = "1", string resiliency = "") =>
        Resources.Tenant("orders", "orders-token") +
        Resources.Tenant("billing", "billing-token", billingLimits) +
        Resources.Component("store", "state.fake", new Dictionary<string, string> { ["setting"] = storeValue, ["backendFailureThreshold"] = "2" }) +
        Resources.Component("other", "state.fake", new Dictionary<string, string> { ["setting"] = otherValue }) +
        resiliency;

    private static ValueTask<int> Fail(int _, CancellationToken __) => throw new ComponentException("backend down");

    private static ValueTask<int> Succeed(int value, CancellationToken _) => ValueTask.FromResult(value);

    [Fact]
    public async Task A_route_and_its_breaker_state_survive_a_reload_that_changes_another_tenant_or_another_component()
    {
        await ApplyAsync(Base(resiliency: Breaker()));
        var route = Route("orders", BuildingBlock.State, "store")!;
        Assert.NotSame(Polly.ResiliencePipeline.Empty, route.Pipeline);
        // Two failures open both the tenant's Resiliency breaker and the backend breaker of the store.
        for (var i = 0; i < 2; i++)
        {
            await Assert.ThrowsAsync<ComponentException>(() => route.RunGuardedAsync(0, Fail, default).AsTask());
        }
        Assert.True(route.Component.Guard!.Breaker.IsOpen);

        await ApplyAsync(Base(billingLimits: "burst: 20", otherValue: "2", resiliency: Breaker()) +
            Resources.Component("added", "pubsub.fake"));

        var after = Route("orders", BuildingBlock.State, "store");
        Assert.Same(route, after);
        Assert.True(after!.Component.Guard!.Breaker.IsOpen);
        // The tenant's own breaker is still open: the call fails without reaching the store.
        var calls = 0;
        await Assert.ThrowsAsync<CircuitOpenException>(() => after.RunGuardedAsync(0, (v, ct) => { calls++; return Succeed(v, ct); }, default).AsTask());
        Assert.Equal(0, calls);
        // The changed component got a new route; the unchanged tenant saw the added one.
        Assert.NotNull(Route("orders", BuildingBlock.PubSub, "added"));
    }

    [Fact]
    public async Task A_view_whose_routes_all_survive_is_kept_whole()
    {
        await ApplyAsync(Base());
        var routes = _configuration.Current.Tenants["orders"].Routes;

        await ApplyAsync(Base(billingLimits: "burst: 20"));

        Assert.Same(routes, _configuration.Current.Tenants["orders"].Routes);
        Assert.NotSame(routes, TenantRoutes.Empty);
    }

    [Fact]
    public async Task A_reload_that_changes_the_component_builds_a_new_route_and_guard()
    {
        await ApplyAsync(Base());
        var route = Route("orders", BuildingBlock.State, "store")!;
        for (var i = 0; i < 2; i++)
        {
            await Assert.ThrowsAsync<ComponentException>(() => route.RunGuardedAsync(0, Fail, default).AsTask());
        }

        await ApplyAsync(Base(storeValue: "2"));

        var after = Route("orders", BuildingBlock.State, "store")!;
        Assert.NotSame(route, after);
        Assert.NotSame(route.Instance, after.Instance);
        Assert.False(after.Component.Guard!.Breaker.IsOpen);
        Assert.Equal(7, (await after.RunGuardedAsync(7, Succeed, default)).Value);
    }

    [Fact]
    public async Task A_reload_that_changes_the_tenants_resiliency_builds_a_new_route_and_keeps_the_others()
    {
        await ApplyAsync(Base(resiliency: Breaker()));
        var orders = Route("orders", BuildingBlock.State, "store")!;
        var billing = Route("billing", BuildingBlock.State, "store")!;
        Assert.Same(Polly.ResiliencePipeline.Empty, billing.Pipeline);

        await ApplyAsync(Base(resiliency: Breaker(retries: 1)));

        var after = Route("orders", BuildingBlock.State, "store")!;
        Assert.NotSame(orders, after);
        Assert.NotSame(orders.Pipeline, after.Pipeline);
        // The store itself is unchanged: its guard, shared by every tenant, is the same one.
        Assert.Same(orders.Component.Guard, after.Component.Guard);
        // billing is not governed by that Resiliency: its route stays.
        Assert.Same(billing, Route("billing", BuildingBlock.State, "store"));

        // A Resiliency that stops governing the pair drops the pipeline.
        await ApplyAsync(Base());
        Assert.Same(Polly.ResiliencePipeline.Empty, Route("orders", BuildingBlock.State, "store")!.Pipeline);
    }

    [Fact]
    public async Task A_changed_tenant_gets_new_routes()
    {
        await ApplyAsync(Base());
        var route = Route("billing", BuildingBlock.State, "store");

        await ApplyAsync(Base(billingLimits: "burst: 30"));

        Assert.NotSame(route, Route("billing", BuildingBlock.State, "store"));
        Assert.Same(route!.Component.Guard, Route("billing", BuildingBlock.State, "store")!.Component.Guard);
    }

    [Fact]
    public async Task A_tenant_cannot_reach_a_component_not_scoped_to_it_by_its_name_or_under_another_building_block()
    {
        await ApplyAsync(Resources.Tenant("orders", "orders-token") + Resources.Tenant("billing", "billing-token") +
            Resources.Component("billing-store", "state.fake", scopes: ["billing"]) +
            Resources.Component("events", "pubsub.fake"));
        var orders = _configuration.Current.Tenants["orders"].Routes;
        var billing = _configuration.Current.Tenants["billing"].Routes;

        Assert.Null(orders.State.Find("billing-store"));
        Assert.True(orders.State.IsEmpty);
        Assert.NotNull(billing.State.Find("billing-store"));
        Assert.False(billing.State.IsEmpty);
        // A component is reached only under its own building block.
        Assert.Null(orders.State.Find("events"));
        Assert.Null(billing.PubSub.Find("billing-store"));
        Assert.Null(billing.Bindings.Find("billing-store"));
        Assert.NotNull(orders.PubSub.Find("events"));
        Assert.Equal(["events"], orders.All.Select(r => r.Name));
        Assert.All(billing.All, r => Assert.Equal("billing", r.AppId));
    }

    [Fact]
    public async Task A_retired_component_has_no_route_after_the_reload_and_is_disposed()
    {
        await ApplyAsync(Base());
        var other = Route("orders", BuildingBlock.State, "other")!;

        await ApplyAsync(Resources.Tenant("orders", "orders-token") + Resources.Tenant("billing", "billing-token", "burst: 10") +
            Resources.Component("store", "state.fake", new Dictionary<string, string> { ["setting"] = "1", ["backendFailureThreshold"] = "2" }));

        Assert.Null(Route("orders", BuildingBlock.State, "other"));
        Assert.Null(Route("billing", BuildingBlock.State, "other"));
        Assert.NotNull(Route("orders", BuildingBlock.State, "store"));
        await Eventually.TrueAsync(() => Task.FromResult(((FakeComponent)other.Instance!).Disposed), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task The_routes_are_bounded_by_the_configuration()
    {
        await ApplyAsync(Base() + Resources.Component("events", "pubsub.fake", scopes: ["orders"]));
        var snapshot = _configuration.Current;

        foreach (var name in Enumerable.Range(0, 1000).Select(i => $"made-up-{i}"))
        {
            Assert.Null(snapshot.Tenants["orders"].Routes.State.Find(name));
            Assert.True(snapshot.Tenants["orders"].Routes.Block(name).IsEmpty);
        }

        // One route per tenant and component scoped to it: 3 for orders, 2 for billing; nothing made up was added.
        Assert.Equal(3, snapshot.Tenants["orders"].Routes.All.Length);
        Assert.Equal(2, snapshot.Tenants["billing"].Routes.All.Length);
        Assert.Same(snapshot, _configuration.Current);
    }

    [Fact]
    public async Task An_app_pipeline_survives_a_reload_that_leaves_its_policy_and_tenants_unchanged()
    {
        var appPolicy = """
            apiVersion: dapr.io/v1alpha1
            kind: Resiliency
            metadata:
              name: to-billing
            spec:
              policies:
                circuitBreakers:
                  cb:
                    trip: consecutiveFailures >= 2
              targets:
                apps:
                  billing:
                    circuitBreaker: cb
            ---

            """;
        await ApplyAsync(Base(resiliency: appPolicy));
        var policies = new ResiliencyPolicies(_configuration, _time);
        var pipeline = policies.ForApp("orders", "billing");
        Assert.NotSame(Polly.ResiliencePipeline<AppCallResult>.Empty, pipeline);

        await ApplyAsync(Base(otherValue: "2", resiliency: appPolicy));
        Assert.Same(pipeline, policies.ForApp("orders", "billing"));

        await ApplyAsync(Base(otherValue: "2", resiliency: appPolicy.Replace(">= 2", ">= 3", StringComparison.Ordinal)));
        Assert.NotSame(pipeline, policies.ForApp("orders", "billing"));
        Assert.Equal(1, policies.CachedPipelines);
    }

    private sealed class FakeFactory : IComponentFactory
    {
        public IReadOnlyCollection<string> Types { get; } = ["state.fake", "pubsub.fake", "bindings.fake"];

        public IComponent Create(ComponentContext context) => new FakeComponent();
    }

    private sealed class FakeComponent : IComponent
    {
        public bool Disposed { get; private set; }

        public IReadOnlyList<string> Capabilities => [];

        public ValueTask InitAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask DisposeAsync()
        {
            Disposed = true;
            return ValueTask.CompletedTask;
        }
    }
}
