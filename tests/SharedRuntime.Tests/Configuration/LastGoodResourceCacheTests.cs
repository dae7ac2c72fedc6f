using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.Configuration;

public sealed class LastGoodResourceCacheTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("sharedruntime-cache-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>
    /// A large resource file (written to the cache in segments) comes back from the cache exactly as it was read, with
    /// characters outside the BMP throughout, one of them straddling the first 8,192-character segment's end; and its
    /// resources parse again.
    /// </summary>
    [Fact]
    public async Task ALargeFileComesBackExactlyAsItWasRead()
    {
        var text = new System.Text.StringBuilder("#").Append('a', 8190).Append("\U0001F600\n");
        Assert.True(char.IsHighSurrogate(text[8191]));
        for (var i = 0; i < 3000; i++)
        {
            text.Append($"---\napiVersion: sharedruntime.io/v1alpha1\nkind: Tenant\nmetadata:\n  name: t{i}\n  labels: {{note: \"\U0001F600 {new string('\u00e9', i % 7)}\\\"quoted\\\"\"}}\nspec:\n  apiToken: {{value: token-{i}}}\n");
        }
        var document = new ResourceDocument(Path.Combine(_folder, "tenants.yaml"), text.ToString());
        var cache = new LastGoodResourceCache(Path.Combine(_folder, "state"), [_folder]);

        cache.Save([document]);
        var set = await cache.LoadAsync(CancellationToken.None);

        Assert.Equal(document, Assert.Single(set.Documents));
        Assert.Equal(3000, set.Tenants.Count);
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
