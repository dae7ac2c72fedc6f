using System.Net;
using SharedRuntime.Tests.Kubernetes;
using static SharedRuntime.FunctionalTests.Kubernetes.KubernetesObjects;

namespace SharedRuntime.FunctionalTests.Kubernetes;

/// <summary>
/// A Tenant's limits declared for the whole cluster: each runtime takes the limit divided by the ready replicas of its
/// own Service, as its EndpointSlices say, and follows them when replicas come or go. Per-runtime limits stay as they are.
/// </summary>
[Collection(SharedRuntime.FunctionalTests.Lifecycle.ProcessTestsCollection.Name)]
public sealed class ClusterWideLimitsTests
{
    private const string Namespace = "shared-runtime-system";
    private const string Service = "shared-runtime";

    [Fact]
    public async Task AClusterWideLimitIsSharedBetweenTheReadyReplicasAndFollowsThem()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(EndpointSlice("shared-runtime-a", Service, ready: 4));
        // Another Service's slice in the same namespace is not counted.
        api.Apply(EndpointSlice("other-a", "other", ready: 7));
        api.Apply(Tenant("fleet", "fleet-token", """{"requestsPerSecond":100,"maxConcurrency":10,"scope":"cluster"}"""));
        api.Apply(Tenant("local", "local-token", """{"requestsPerSecond":100,"maxConcurrency":10}"""));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api, o => o with { ClusterService = $"{Namespace}/{Service}" });

        var fleet = runtime.Configuration.Current.Tenants["fleet.default"];
        Assert.Equal(25, fleet.Limits.RequestsPerSecond);
        Assert.Equal(25, fleet.Limits.Burst);
        Assert.Equal(3, fleet.Limits.MaxConcurrency);
        var local = runtime.Configuration.Current.Tenants["local.default"];
        Assert.Equal(100, local.Limits.RequestsPerSecond);
        Assert.Equal(10, local.Limits.MaxConcurrency);
        // The share is what the tenant is refused at and what its refusal says.
        Assert.Contains("rate limit of 25 requests per second", await FirstRefusalAsync(runtime.Client("fleet-token")), StringComparison.Ordinal);

        // Two replicas go away (one terminating, one deleted with its slice): the share doubles within 5 s.
        api.Apply(EndpointSlice("shared-runtime-a", Service, ready: 2, notReady: 1));
        await runtime.WaitForConfigurationAsync(s => s.Tenants["fleet.default"].Limits.RequestsPerSecond == 50, TimeSpan.FromSeconds(5));
        Assert.Equal(5, runtime.Configuration.Current.Tenants["fleet.default"].Limits.MaxConcurrency);
        Assert.Contains("rate limit of 50 requests per second", await FirstRefusalAsync(runtime.Client("fleet-token")), StringComparison.Ordinal);

        // The per-runtime tenant was not rebuilt: same limits, same admission (its bucket and bulkhead kept their state).
        Assert.Same(local.Admission, runtime.Configuration.Current.Tenants["local.default"].Admission);
        Assert.Equal(100, runtime.Configuration.Current.Tenants["local.default"].Limits.RequestsPerSecond);

        // The slices were read for this Service only, with a label selector, and watched.
        Assert.Contains(api.Requests, r => r.StartsWith($"GET /apis/discovery.k8s.io/v1/namespaces/{Namespace}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D{Service}&watch=true",
            StringComparison.Ordinal));
    }

    [Fact]
    public async Task WithoutAClusterServiceEveryRuntimeTakesTheWholeLimit()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(EndpointSlice("shared-runtime-a", Service, ready: 4));
        api.Apply(Tenant("fleet", "fleet-token", """{"requestsPerSecond":100,"scope":"cluster"}"""));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        Assert.Equal(100, runtime.Configuration.Current.Tenants["fleet.default"].Limits.RequestsPerSecond);
        Assert.DoesNotContain(api.Requests, r => r.Contains("endpointslices", StringComparison.Ordinal));
    }

    /// <summary>Sends until the tenant is refused for its rate; returns the refusal's message.</summary>
    private static async Task<string> FirstRefusalAsync(HttpClient client)
    {
        for (var i = 0; i < 1000; i++)
        {
            using var response = await client.GetAsync("/v1.0/metadata");
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                return await response.Content.ReadAsStringAsync();
            }
        }
        throw new InvalidOperationException("never refused");
    }
}
