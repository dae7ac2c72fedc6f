using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.Configuration;

public sealed class LastGoodResourceCacheTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("sharedruntime-cache-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>
    /// A large resource file (written to the cache in segments) comes back from the cache exactly as it was read, with
    /// characters outside the BMP throughout, one of them straddling the first 8,192-character segment's end; and its
    /// resources parse again. (Its tokens come from the environment: a literal token would be kept as its hash.)
    /// </summary>
    [Fact]
    public async Task ALargeFileComesBackExactlyAsItWasRead()
    {
        var text = new System.Text.StringBuilder("#").Append('a', 8190).Append("\U0001F600\n");
        Assert.True(char.IsHighSurrogate(text[8191]));
        for (var i = 0; i < 3000; i++)
        {
            text.Append($"---\napiVersion: sharedruntime.io/v1alpha1\nkind: Tenant\nmetadata:\n  name: t{i}\n  labels: {{note: \"\U0001F600 {new string('\u00e9', i % 7)}\\\"quoted\\\"\"}}\nspec:\n  apiToken: {{env: TOKEN_{i}}}\n");
        }
        var document = new ResourceDocument(Path.Combine(_folder, "tenants.yaml"), text.ToString());
        var cache = new LastGoodResourceCache(Path.Combine(_folder, "state"), [_folder], name => $"token-{name}");

        cache.Save([document]);
        var set = await cache.LoadAsync(CancellationToken.None);

        Assert.Equal(document, Assert.Single(set.Documents));
        Assert.Equal(3000, set.Tenants.Count);
    }

    [Fact]
    public async Task ATokenIsKeptAsItsHashAndItsTenantIsStillFoundByIt()
    {
        const string yaml = """
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata: {name: orders}
            spec:
              apiToken: {value: orders-plain-token}
              appChannel: {appApiToken: {value: app-side-token}}
            ---
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata: {name: billing}
            spec: {apiToken: billing-plain-token}
            """;
        var cache = new LastGoodResourceCache(Path.Combine(_folder, "state"), [_folder]);
        cache.Save([new ResourceDocument(Path.Combine(_folder, "tenants.yaml"), yaml)]);

        var file = await File.ReadAllTextAsync(cache.FilePath);
        Assert.DoesNotContain("orders-plain-token", file, StringComparison.Ordinal);
        Assert.DoesNotContain("billing-plain-token", file, StringComparison.Ordinal);
        var set = await cache.LoadAsync(CancellationToken.None);
        var orders = set.Tenants.Single(t => t.AppId == "orders");
        Assert.Equal(System.Security.Cryptography.SHA256.HashData("orders-plain-token"u8), orders.ApiTokenSha256);
        Assert.Equal("", orders.ApiToken);
        // A literal appApiToken is the operator's own text, kept as written; one from a Secret is never written.
        Assert.Equal("app-side-token", orders.AppChannel.AppApiToken);
        var snapshot = new SharedRuntime.Tenancy.RuntimeSnapshot(1,
            set.Tenants.Select(t => new SharedRuntime.Tenancy.TenantContext(t, TenantLimits.Defaults, new SharedRuntime.Tenancy.TenantState(t.AppId))), [], set);
        Assert.Equal("orders", snapshot.FindByToken("orders-plain-token")?.AppId);
        Assert.Equal("billing", snapshot.FindByToken("billing-plain-token")?.AppId);
        Assert.Null(snapshot.FindByToken("orders-plain-tokem"));
    }

    [Fact]
    public void ATokenHashIsReadOnlyFromTheCache()
    {
        const string yaml = """
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata: {name: orders}
            spec: {apiToken: {sha256: 0000000000000000000000000000000000000000000000000000000000000000}}
            """;
        var set = ResourceParser.Parse(ResourceReader.ReadText("tenants.yaml", yaml), _ => null);
        Assert.Empty(set.Tenants);
        Assert.Single(set.RejectedTenants);
    }

    /// <summary>Kubernetes objects served from the cache keep their namespaces: the same app-id in two namespaces stays two tenants.</summary>
    [Fact]
    public async Task CachedKubernetesObjectsKeepTheirNamespaces()
    {
        static ResourceDocument Tenant(string ns) => new($"kubernetes/{ns}/tenants.v1alpha1/orders",
            """{"apiVersion":"sharedruntime.io/v1alpha1","kind":"Tenant","metadata":{"name":"orders","namespace":""" + $"\"{ns}\"" +
            """},"spec":{"apiToken":{"value":""" + $"\"{ns}-token\"" + "}}}");
        var cache = new LastGoodResourceCache(Path.Combine(_folder, "state"), ["kubernetes:*"]);

        cache.Save([Tenant("team-a"), Tenant("team-b")]);
        var set = await cache.LoadAsync(CancellationToken.None);

        Assert.Empty(set.RejectedTenants);
        Assert.Equal(["orders.team-a", "orders.team-b"], set.Tenants.Select(t => t.Id).Order(StringComparer.Ordinal));
    }
}
