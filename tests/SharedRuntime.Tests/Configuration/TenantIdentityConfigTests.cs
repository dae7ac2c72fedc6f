using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.Configuration;

public sealed class TenantIdentityConfigTests
{
    private static ResourceSet Parse(string identity) => ResourceParser.Parse(ResourceReader.ReadText("tenants.yaml", $$"""
        apiVersion: sharedruntime.io/v1alpha1
        kind: Tenant
        metadata: {name: orders, namespace: shop}
        spec:
          apiToken: {value: orders-token}
          identity: {{identity}}
        """), _ => null);

    [Fact]
    public void AServiceAccountAndLabelsBindTheTokenToPodsOfTheTenantsNamespace()
    {
        var identity = Assert.Single(Parse("{serviceAccountName: orders, podSelector: {matchLabels: {app: orders}}}").Tenants).Identity!;
        Assert.Equal("shop", identity.Namespace);
        var labels = new Dictionary<string, string> { ["app"] = "orders", ["pod-template-hash"] = "abc" };
        Assert.True(identity.Matches("shop", "orders", labels));
        Assert.False(identity.Matches("elsewhere", "orders", labels));
        Assert.False(identity.Matches("shop", "default", labels));
        Assert.False(identity.Matches("shop", "orders", new Dictionary<string, string> { ["app"] = "billing" }));
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("{podSelector: {matchLabels: {}}}")]
    [InlineData("{serviceAccount: orders}")]
    public void AnIdentityThatBindsToNoPodRefusesTheTenant(string identity)
    {
        var set = Parse(identity);
        Assert.Empty(set.Tenants);
        Assert.Contains("identity", Assert.Single(set.RejectedTenants).Message, StringComparison.Ordinal);
    }
}
