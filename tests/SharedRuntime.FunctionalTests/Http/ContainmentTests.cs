using System.Net;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.Components;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>A failure of one component or one request stays with it: other components and other tenants go on serving.</summary>
public sealed class ContainmentTests
{
    [Fact]
    public async Task AComponentWhoseInitFailsOrTimesOutIsUnavailableAloneAndSaysWhy()
    {
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string>
        {
            ["components.yaml"] =
                Resources.Component("good", "state.in-memory") +
                Resources.Component("broken", "state.test-failing-init") +
                Resources.Component("stuck", "state.test-hanging-init").Replace("  version: v1", "  version: v1\n  initTimeout: 200ms\n  ignoreErrors: true", StringComparison.Ordinal),
            ["tenants.yaml"] = Resources.Tenant("orders", "orders-token") + Resources.Tenant("billing", "billing-token"),
        }, services: s => s.AddSingleton<IComponentFactory>(new TestComponents()));

        var orders = runtime.Client("orders-token");
        Assert.Contains("cannot reach the test server",
            await ErrorAsync(await orders.GetAsync("/v1.0/state/broken/k"), HttpStatusCode.InternalServerError, "ERR_STATE_STORE_NOT_CONFIGURED"));
        Assert.Contains("initTimeout",
            await ErrorAsync(await orders.GetAsync("/v1.0/state/stuck/k"), HttpStatusCode.InternalServerError, "ERR_STATE_STORE_NOT_CONFIGURED"));
        await StatusAsync(await orders.PostAsync("/v1.0/state/good", Json("""[{"key":"k","value":1}]""")), HttpStatusCode.NoContent);
        await StatusAsync(await runtime.Client("billing-token").GetAsync("/v1.0/state/good/k"), HttpStatusCode.NoContent);
    }

    [Fact]
    public async Task AnUnexpectedExceptionInOneTenantsRequestGivesItA500AndTheNextRequestOfAnotherTenantSucceeds()
    {
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string>
        {
            ["components.yaml"] = Resources.Component("throwing", "state.test-throwing") + Resources.Component("good", "state.in-memory"),
            ["tenants.yaml"] = Resources.Tenant("orders", "orders-token") + Resources.Tenant("billing", "billing-token"),
        }, services: s => s.AddSingleton<IComponentFactory>(new TestComponents()));

        using var failed = await runtime.Client("orders-token").GetAsync("/v1.0/state/throwing/k");
        Assert.Contains("a bug in the store", await ErrorAsync(failed, HttpStatusCode.InternalServerError, "ERR_STATE_GET"));

        await StatusAsync(await runtime.Client("billing-token").PostAsync("/v1.0/state/good", Json("""[{"key":"k","value":2}]""")), HttpStatusCode.NoContent);
        Assert.Equal("2", await runtime.Client("billing-token").GetStringAsync("/v1.0/state/good/k"));
        await StatusAsync(await runtime.Client("orders-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
    }

    /// <summary>State stores that fail the way real ones can: at init, by hanging at init, or with a bug in a call.</summary>
    private sealed class TestComponents : IComponentFactory
    {
        public IReadOnlyCollection<string> Types { get; } = ["state.test-failing-init", "state.test-hanging-init", "state.test-throwing"];

        public IComponent Create(ComponentContext context) => new Store(context.Type);

        private sealed class Store(string type) : IStateStore
        {
            public IReadOnlyList<string> Capabilities { get; } = [];

            public async ValueTask InitAsync(CancellationToken cancellationToken)
            {
                switch (type)
                {
                    case "state.test-failing-init":
                        throw new ComponentException("cannot reach the test server");
                    case "state.test-hanging-init":
                        await Task.Delay(Timeout.Infinite, cancellationToken);
                        break;
                }
            }

            public ValueTask<StateEntry?> GetAsync(string key, CancellationToken cancellationToken) =>
                throw new InvalidOperationException("a bug in the store");

            public ValueTask<string> SetAsync(StateSetRequest request, CancellationToken cancellationToken) => throw new NotSupportedException();
            public ValueTask DeleteAsync(StateDeleteRequest request, CancellationToken cancellationToken) => throw new NotSupportedException();
            public ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, CancellationToken cancellationToken) => throw new NotSupportedException();
            public ValueTask<StateUsage> GetUsageAsync(string prefix, CancellationToken cancellationToken) => ValueTask.FromResult(default(StateUsage));
            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }
}
