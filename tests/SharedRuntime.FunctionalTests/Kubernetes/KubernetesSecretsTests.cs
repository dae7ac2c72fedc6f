using System.Net;
using SharedRuntime.Tests.Kubernetes;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;
using static SharedRuntime.FunctionalTests.Kubernetes.KubernetesObjects;

namespace SharedRuntime.FunctionalTests.Kubernetes;

/// <summary>
/// Secrets in kubernetes mode: only the ones resources name are read, by name, in the resource's own namespace; the
/// runtime never lists or watches Secrets, so Secrets nobody names cost it nothing, and a tenant of one namespace
/// cannot have the runtime read a Secret of another.
/// </summary>
[Collection(SharedRuntime.FunctionalTests.Lifecycle.ProcessTestsCollection.Name)]
public sealed class KubernetesSecretsTests
{
    [Fact]
    public async Task FiveHundredLargeSecretsInUnrelatedNamespacesAreNeverRead()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        for (var ns = 0; ns < 5; ns++)
        {
            api.ApplyLargeSecrets($"unrelated-{ns}", 100, 1024 * 1024);
        }
        api.Apply(Secret("orders-token", "token", "token-from-secret", "shop"));
        api.Apply(TenantWithSecretToken("orders", "orders-token", "token", "shop"));
        var before = GC.GetTotalMemory(forceFullCollection: true);

        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        await StatusAsync(await runtime.Client("token-from-secret").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);

        // The one Secret named was read by name; no Secret was listed or watched, in any namespace.
        var secretRequests = api.Requests.Where(r => r.Contains("/secrets", StringComparison.Ordinal)).Distinct().ToList();
        Assert.Equal(["GET /api/v1/namespaces/shop/secrets/orders-token auth"], secretRequests);
        // Had the runtime read them, it would hold 500 MiB of their data (twice that as text); it holds far less than one.
        var grown = GC.GetTotalMemory(forceFullCollection: true) - before;
        Assert.True(grown < 200L * 1024 * 1024, $"the managed heap grew by {grown / (1024 * 1024)} MiB");
    }

    [Fact]
    public async Task ATenantCannotNameASecretOfAnotherNamespace()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(Secret("orders-token", "token", "orders-secret-token", "shop"));
        api.Apply(TenantWithSecretToken("orders", "orders-token", "token", "shop"));
        // Another namespace names the same Secret, for its Tenant's token and for a Component's metadata.
        api.Apply(TenantWithSecretToken("thief", "orders-token", "token", "other"));
        api.Apply(Tenant("other-app", "other-app-token", @namespace: "other"));
        api.Apply(Component("loot", "state.in-memory", """[{"name":"stolen","secretKeyRef":{"name":"orders-token","key":"token"}}]""", "other"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);

        await StatusAsync(await runtime.Client("orders-secret-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        Assert.Equal("orders.shop", runtime.Configuration.Current.FindByToken("orders-secret-token")!.AppId);
        Assert.False(runtime.Configuration.Current.Tenants.ContainsKey("thief.other"));
        var loot = runtime.Configuration.Current.Components["other/loot"];
        Assert.DoesNotContain(loot.Config.Metadata, m => m.Value == "orders-secret-token");
        // The other namespace's references were looked up in that namespace only.
        Assert.Contains(api.Requests, r => r.StartsWith("GET /api/v1/namespaces/other/secrets/orders-token", StringComparison.Ordinal));
        Assert.Single(api.Requests.Where(r => r.StartsWith("GET /api/v1/namespaces/shop/secrets/", StringComparison.Ordinal)).Distinct());
    }

    [Fact]
    public async Task ListsArriveInPages()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        for (var i = 0; i < 1200; i++)
        {
            api.Apply(Tenant($"app-{i:D4}", $"token-{i:D4}"));
        }
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        await StatusAsync(await runtime.Client("token-1199").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        Assert.Contains(api.Requests, r => r.StartsWith("GET /apis/sharedruntime.io/v1alpha1/tenants?limit=500&continue=1000", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TheFailStaticCacheHoldsNoSecretInPlainText()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(Secret("orders-token", "token", "orders-secret-token", "shop"));
        api.Apply(Secret("app-token", "token", "app-side-secret", "shop"));
        api.Apply(Secret("db", "password", "db-secret-password", "shop"));
        api.Apply("""
            {"apiVersion":"sharedruntime.io/v1alpha1","kind":"Tenant","metadata":{"name":"orders","namespace":"shop"},
             "spec":{"apiToken":{"secretKeyRef":{"name":"orders-token","key":"token"}},
                     "appChannel":{"appApiToken":{"secretKeyRef":{"name":"app-token","key":"token"}}}}}
            """);
        api.Apply(Tenant("billing", "billing-literal-token", @namespace: "shop"));
        api.Apply(Component("store", "state.in-memory", """[{"name":"password","secretKeyRef":{"name":"db","key":"password"}}]""", "shop"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        await StatusAsync(await runtime.Client("orders-secret-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        Assert.Equal("app-side-secret", runtime.Configuration.Current.Tenants["orders.shop"].Config.AppChannel.AppApiToken);

        var files = Directory.GetFiles(runtime.Options.StateDir!, "last-good-resources-*.json");
        var cache = await File.ReadAllTextAsync(Assert.Single(files));
        foreach (var secret in new[] { "orders-secret-token", "app-side-secret", "db-secret-password", "billing-literal-token" })
        {
            Assert.DoesNotContain(secret, cache, StringComparison.Ordinal);
        }
        Assert.Contains(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData("orders-secret-token"u8)), cache, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFileSecretStorePointedAtTheCacheIsRefused()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(Tenant("orders", "orders-token"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api, o => o with { AllowedFileRoots = [Path.GetTempPath()] });
        var cacheFile = Assert.Single(Directory.GetFiles(runtime.Options.StateDir!, "last-good-resources-*.json"));

        api.Apply(Component("leak", "secretstores.local.file", $$"""[{"name":"secretsFile","value":"{{cacheFile}}"}]"""));
        await runtime.WaitForConfigurationAsync(s => s.Components.ContainsKey("default/leak"));
        var leak = runtime.Configuration.Current.Components["default/leak"];
        Assert.Null(leak.Instance);
        Assert.Contains("state folder", leak.Error, StringComparison.Ordinal);
        var answer = await runtime.Client("orders-token").GetAsync("/v1.0/secrets/leak/bulk");
        Assert.False(answer.IsSuccessStatusCode);
        Assert.DoesNotContain("sha256", await answer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
