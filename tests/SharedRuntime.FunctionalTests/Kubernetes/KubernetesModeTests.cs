using System.Net;
using SharedRuntime.Host;
using SharedRuntime.Tests.Kubernetes;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;
using static SharedRuntime.FunctionalTests.Kubernetes.KubernetesObjects;

namespace SharedRuntime.FunctionalTests.Kubernetes;

/// <summary>
/// The runtime in kubernetes mode against a fake API server that speaks list and watch: Tenants created, changed and
/// deleted in the cluster take effect within a second, and no change is lost when watches drop or expire.
/// </summary>
[Collection(SharedRuntime.FunctionalTests.Lifecycle.ProcessTestsCollection.Name)]
public sealed class KubernetesModeTests
{
    private static readonly TimeSpan WithinASecond = TimeSpan.FromSeconds(1);

    /// <summary>For changes that need a reconnect, a re-list or a second object: short, but not the one-second bar of a live watch.</summary>
    private static readonly TimeSpan Promptly = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task ATenantCreatedInTheClusterIsServedAndDeletingItRevokesItsToken()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(Tenant("orders", "orders-token"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        await StatusAsync(await runtime.Client("orders-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);

        var newcomer = runtime.Client("newcomer-token");
        await ErrorAsync(await newcomer.GetAsync("/v1.0/metadata"), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
        api.Apply(Tenant("newcomer", "newcomer-token"));
        await Eventually.TrueAsync(async () => (await newcomer.GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK, WithinASecond, "created tenant served");

        api.Delete("sharedruntime.io/v1alpha1", "Tenant", "default", "newcomer");
        await Eventually.TrueAsync(async () => (await newcomer.GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.Unauthorized, WithinASecond, "deleted tenant refused");
        await StatusAsync(await runtime.Client("orders-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);

        // Lists and watches went to the API with the kubeconfig's bearer token.
        Assert.Contains(api.Requests, r => r.StartsWith("GET /apis/sharedruntime.io/v1alpha1/tenants?watch=true", StringComparison.Ordinal) &&
                                           r.Contains("allowWatchBookmarks=true", StringComparison.Ordinal) && r.EndsWith(" auth", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AChangeOfLimitsApplies()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(Tenant("orders", "orders-token"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        var orders = runtime.Client("orders-token");
        for (var i = 0; i < 3; i++)
        {
            await StatusAsync(await orders.GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        }

        api.Apply(Tenant("orders", "orders-token", """{"requestsPerSecond":1,"burst":1}"""));
        await Eventually.TrueAsync(async () => (await orders.GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.TooManyRequests, Promptly, "limit applied");
        Assert.Equal(1, runtime.Configuration.Current.Tenants["orders.default"].Limits.Burst);
    }

    [Fact]
    public async Task AChangeMadeWhileTheWatchWasDroppedIsNotMissed()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(Tenant("orders", "orders-token"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        await WaitForWatchAsync(api);

        api.DropWatches();
        api.Apply(Tenant("during-drop", "during-drop-token"));
        var client = runtime.Client("during-drop-token");
        // Reconnecting waits a short backoff first, so this allows more than the one second of a change on a live watch.
        await Eventually.TrueAsync(async () => (await client.GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(5), "change made during the drop");

        // The watch came back: later changes still arrive.
        api.Delete("sharedruntime.io/v1alpha1", "Tenant", "default", "during-drop");
        await Eventually.TrueAsync(async () => (await client.GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.Unauthorized, Promptly, "delete after the drop");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AWatchThatExpiresListsAgainWithoutMissingAChange(bool goneAsErrorEvent)
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.GoneAsErrorEvent = goneAsErrorEvent;
        api.Apply(Tenant("orders", "orders-token"));
        api.Apply(Tenant("leaving", "leaving-token"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        await WaitForWatchAsync(api);
        var listsBefore = ListCount(api);

        // The watch drops, changes happen, and the history is compacted: resuming from the old version is 410 Gone.
        api.DropWatches();
        api.Apply(Tenant("arrived", "arrived-token"));
        api.Delete("sharedruntime.io/v1alpha1", "Tenant", "default", "leaving");
        api.Compact();

        var arrived = runtime.Client("arrived-token");
        await Eventually.TrueAsync(async () => (await arrived.GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK, Promptly, "created during expiry");
        await Eventually.TrueAsync(async () => (await runtime.Client("leaving-token").GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.Unauthorized,
            Promptly, "deleted during expiry");
        Assert.True(ListCount(api) > listsBefore, "the tenants were listed again after 410 Gone");
    }

    [Fact]
    public async Task ATokenFromASecretWorksAndFollowsTheSecret()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(Secret("orders-token", "token", "token-from-secret", "shop"));
        api.Apply(TenantWithSecretToken("orders", "orders-token", "token", "shop"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api, o => o with { SecretRefreshSeconds = 1 });
        await StatusAsync(await runtime.Client("token-from-secret").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);

        // Rotating the Secret rotates the token.
        api.Apply(Secret("orders-token", "token", "rotated-token", "shop"));
        await Eventually.TrueAsync(async () => (await runtime.Client("rotated-token").GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK,
            Promptly, "rotated token accepted");
        await ErrorAsync(await runtime.Client("token-from-secret").GetAsync("/v1.0/metadata"), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
    }

    [Fact]
    public async Task ABadTenantIsLeftOutAndTheOthersStillApply()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(Tenant("orders", "orders-token"));
        api.Apply(Tenant("copycat", "orders-token"));
        api.Apply(TenantWithSecretToken("early", "not-there-yet", "token"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api, o => o with { SecretRefreshSeconds = 1 });
        await StatusAsync(await runtime.Client("orders-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        Assert.False(runtime.Configuration.Current.Tenants.ContainsKey("copycat.default"));
        Assert.False(runtime.Configuration.Current.Tenants.ContainsKey("early.default"));

        // The Secret arrives later: the tenant that waited for it is served.
        api.Apply(Secret("not-there-yet", "token", "early-token"));
        await Eventually.TrueAsync(async () => (await runtime.Client("early-token").GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK,
            Promptly, "tenant served once its secret exists");
    }

    [Fact]
    public async Task AComponentSecretKeyRefResolvesFromTheNamespacesSecretsAndUnknownTypesAreLeftOut()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(Secret("files", "path", "ignored-value"));
        api.Apply(Component("store", "state.in-memory", """[{"name":"note","secretKeyRef":{"name":"files","key":"path"}}]"""));
        api.Apply(Component("cosmos", "state.azure.cosmosdb"));
        api.Apply(Tenant("orders", "orders-token"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);

        var orders = runtime.Client("orders-token");
        await StatusAsync(await orders.PostAsync("/v1.0/state/store", Json("""[{"key":"k","value":1}]""")), HttpStatusCode.NoContent);
        var store = runtime.Configuration.Current.Components["default/store"];
        Assert.Equal("ignored-value", store.Config.Metadata.Single(m => m.Name == "note").Value);
        Assert.False(runtime.Configuration.Current.Components.ContainsKey("default/cosmos"));
    }

    [Fact]
    public async Task AResourceTypeThatIsNotInstalledCountsAsEmpty()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.SetInstalled("components.dapr.io", false);
        api.SetInstalled("subscriptions.dapr.io", false);
        api.Apply(Tenant("orders", "orders-token"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        await StatusAsync(await runtime.Client("orders-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
    }

    /// <summary>
    /// A runtime confined to one namespace by a Role may not read the cluster-scoped kinds (TenantLimitPolicies and
    /// Namespaces): it still starts and serves, with no ceilings, rather than waiting for a list it will never get.
    /// </summary>
    [Fact]
    public async Task ClusterScopedKindsTheRuntimeMayNotReadCountAsEmpty()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Forbid("namespaces.v1");
        api.Forbid("tenantlimitpolicies.sharedruntime.io");
        api.Apply(Tenant("orders", "orders-token"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        await StatusAsync(await runtime.Client("orders-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        Assert.Null(runtime.Configuration.Current.Tenants["orders.default"].Config.Ceiling);
    }

    [Fact]
    public async Task ReadinessIsFalseUntilTheFirstFullSync()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(Tenant("orders", "orders-token"));
        api.HoldLists();
        var folder = Directory.CreateTempSubdirectory("sharedruntime-k8s-").FullName;
        var kubeconfig = Path.Combine(folder, "kubeconfig");
        await File.WriteAllTextAsync(kubeconfig, api.Kubeconfig());
        var ports = TestRuntime.FreePorts(3);
        var app = RuntimeApplication.Build(new RuntimeOptions
        {
            Mode = RuntimeMode.Kubernetes,
            Kubeconfig = kubeconfig,
            ListenAddresses = ["127.0.0.1"],
            DaprHttpPort = ports[0],
            DaprGrpcPort = ports[1],
            MetricsPort = ports[2],
            StateDir = Path.Combine(folder, "state"),
            LogLevel = "warn",
            ReusePort = false,
        });
        try
        {
            var starting = RuntimeApplication.StartAsync(app);
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{ports[0]}"), Timeout = TimeSpan.FromSeconds(5) };
            HttpStatusCode? health = null;
            await Eventually.TrueAsync(async () =>
            {
                try
                {
                    health = (await http.GetAsync("/v1.0/healthz")).StatusCode;
                    return true;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            }, TimeSpan.FromSeconds(10), "the runtime listens before it has synced");
            Assert.Equal(HttpStatusCode.InternalServerError, health);
            Assert.False(starting.IsCompleted);

            api.ReleaseLists();
            await starting.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(HttpStatusCode.NoContent, (await http.GetAsync("/v1.0/healthz")).StatusCode);
            http.DefaultRequestHeaders.Add("dapr-api-token", "orders-token");
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v1.0/metadata")).StatusCode);
        }
        finally
        {
            using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10))) { await app.StopAsync(stop.Token); }
            await app.DisposeAsync();
            Directory.Delete(folder, recursive: true);
        }
    }

    private static int ListCount(FakeKubernetesApi api) =>
        api.Requests.Count(r => r.StartsWith("GET /apis/sharedruntime.io/v1alpha1/tenants", StringComparison.Ordinal) && !r.Contains("watch=true", StringComparison.Ordinal));

    private static Task WaitForWatchAsync(FakeKubernetesApi api) =>
        Eventually.TrueAsync(() => Task.FromResult(api.Requests.Any(r => r.Contains("/tenants?watch=true", StringComparison.Ordinal))),
            TimeSpan.FromSeconds(5), "the tenants are watched");
}
