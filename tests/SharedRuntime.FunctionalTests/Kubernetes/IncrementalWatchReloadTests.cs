using System.Net;
using SharedRuntime.Configuration;
using SharedRuntime.Tests.Kubernetes;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;
using static SharedRuntime.FunctionalTests.Kubernetes.KubernetesObjects;

namespace SharedRuntime.FunctionalTests.Kubernetes;

/// <summary>
/// A watch event turns again only the object it names: an added, changed or deleted Tenant applies, while every other
/// object keeps what the parser made of it (the same <see cref="TenantConfig"/>), and every other tenant its context and
/// the limiter state in it.
/// </summary>
[Collection(SharedRuntime.FunctionalTests.Lifecycle.ProcessTestsCollection.Name)]
public sealed class IncrementalWatchReloadTests
{
    private static readonly TimeSpan Promptly = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task AnAddedChangedAndDeletedTenantAppliesAndTheOthersAreNotParsedAgain()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(Tenant("orders", "orders-token"));
        api.Apply(Tenant("billing", "billing-token"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        var orders = ConfigOf(runtime, "orders.default");
        var billing = ConfigOf(runtime, "billing.default");

        api.Apply(Tenant("newcomer", "newcomer-token"));
        var newcomer = runtime.Client("newcomer-token");
        await Eventually.TrueAsync(async () => (await newcomer.GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK, Promptly, "added tenant served");

        api.Apply(Tenant("billing", "billing-token-2", """{"burst":7}"""));
        await Eventually.TrueAsync(async () => (await runtime.Client("billing-token-2").GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK,
            Promptly, "changed tenant's new token accepted");
        await ErrorAsync(await runtime.Client("billing-token").GetAsync("/v1.0/metadata"), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
        Assert.Equal(7, runtime.Configuration.Current.Tenants["billing.default"].Limits.Burst);
        Assert.NotSame(billing, ConfigOf(runtime, "billing.default"));

        api.Delete("sharedruntime.io/v1alpha1", "Tenant", "default", "newcomer");
        await Eventually.TrueAsync(async () => (await newcomer.GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.Unauthorized, Promptly, "deleted tenant refused");

        // Three reloads later the untouched Tenant is still the object first parsed: no event named it.
        Assert.Same(orders, ConfigOf(runtime, "orders.default"));
        await StatusAsync(await runtime.Client("orders-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
    }

    [Fact]
    public async Task AnUnchangedTenantKeepsItsContextAndSpentBurstWhileAnotherTenantChurns()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(Tenant("orders", "orders-token", """{"requestsPerSecond":0.001,"burst":2}"""));
        api.Apply(Tenant("churn", "churn-token-0"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        var orders = runtime.Client("orders-token");
        await StatusAsync(await orders.GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        await StatusAsync(await orders.GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        await ErrorAsync(await orders.GetAsync("/v1.0/metadata"), HttpStatusCode.TooManyRequests, "ERR_TENANT_RATE_LIMITED");
        var context = runtime.Configuration.Current.Tenants["orders.default"];

        // The other tenant is changed, deleted and created again, one reload each.
        for (var i = 1; i <= 3; i++)
        {
            var token = $"churn-token-{i}";
            api.Apply(Tenant("churn", token, $$"""{"burst":{{10 + i}}}"""));
            await Eventually.TrueAsync(async () => (await runtime.Client(token).GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK, Promptly, $"churn {i}");
        }
        api.Delete("sharedruntime.io/v1alpha1", "Tenant", "default", "churn");
        await Eventually.TrueAsync(() => Task.FromResult(!runtime.Configuration.Current.Tenants.ContainsKey("churn.default")), Promptly, "churn deleted");

        Assert.Same(context, runtime.Configuration.Current.Tenants["orders.default"]);
        // The burst it spent before the churn is still spent: its limiter was not rebuilt.
        await ErrorAsync(await orders.GetAsync("/v1.0/metadata"), HttpStatusCode.TooManyRequests, "ERR_TENANT_RATE_LIMITED");
    }

    [Fact]
    public async Task ARotatedSecretReparsesOnlyTheTenantThatNamesIt()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(Secret("orders-token", "token", "token-from-secret"));
        api.Apply(TenantWithSecretToken("orders", "orders-token", "token"));
        api.Apply(Tenant("billing", "billing-token"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api, o => o with { SecretRefreshSeconds = 1 });
        await StatusAsync(await runtime.Client("token-from-secret").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        var billing = runtime.Configuration.Current.Tenants["billing.default"];
        var billingConfig = ConfigOf(runtime, "billing.default");

        // The Tenant object is unchanged; only the Secret it names is. Its cached parse must not outlive the old value.
        api.Apply(Secret("orders-token", "token", "rotated-token"));
        await Eventually.TrueAsync(async () => (await runtime.Client("rotated-token").GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK,
            Promptly, "rotated token accepted");
        await ErrorAsync(await runtime.Client("token-from-secret").GetAsync("/v1.0/metadata"), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");

        Assert.Same(billingConfig, ConfigOf(runtime, "billing.default"));
        Assert.Same(billing, runtime.Configuration.Current.Tenants["billing.default"]);
    }

    [Fact]
    public async Task ATenantUnderALimitPolicyKeepsItsContextAndSpentBurstWhenAnotherTenantChanges()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply("""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"small","labels":{"tier":"small"}}}""");
        api.Apply("""
            {"apiVersion":"sharedruntime.io/v1alpha1","kind":"TenantLimitPolicy","metadata":{"name":"small-teams"},
             "spec":{"namespaceSelector":{"matchLabels":{"tier":"small"}},"maximum":{"requestsPerSecond":10}}}
            """);
        api.Apply(Tenant("orders", "orders-token", """{"requestsPerSecond":0.001,"burst":2}""", "small"));
        api.Apply(Tenant("other", "other-token-0", "{}", "small"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        var orders = runtime.Client("orders-token");
        await StatusAsync(await orders.GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        await StatusAsync(await orders.GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        var context = runtime.Configuration.Current.Tenants["orders.small"];
        Assert.NotNull(context.Config.Ceiling);

        api.Apply(Tenant("other", "other-token-1", "{}", "small"));
        await Eventually.TrueAsync(async () => (await runtime.Client("other-token-1").GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK, Promptly, "other changed");

        Assert.Same(context, runtime.Configuration.Current.Tenants["orders.small"]);
        await ErrorAsync(await orders.GetAsync("/v1.0/metadata"), HttpStatusCode.TooManyRequests, "ERR_TENANT_RATE_LIMITED");
    }

    /// <summary>The Tenant resource of the current set (not the one a carried-over context keeps): the parser's own object.</summary>
    private static TenantConfig ConfigOf(TestRuntime runtime, string id) =>
        runtime.Configuration.Current.Resources.Tenants.Single(t => t.Id == id);
}
