using SharedRuntime.Configuration;
using SharedRuntime.Host;

namespace SharedRuntime.Tests.Configuration;

/// <summary><c>spec.limits.scope</c>: limits per runtime (the default) or for the whole cluster, shared between the ready replicas.</summary>
public sealed class LimitScopeTests
{
    private static ResourceSet Parse(string yaml) =>
        ResourceParser.Parse(ResourceReader.ReadText("tenants.yaml", yaml), _ => null);

    [Fact]
    public void LimitsArePerRuntimeUnlessTheTenantSaysCluster()
    {
        var set = Parse(Resources.Tenant("plain", "t1", "requestsPerSecond: 100") + Resources.Tenant("runtime", "t2", "requestsPerSecond: 100\nscope: runtime") +
                        Resources.Tenant("fleet", "t3", "requestsPerSecond: 100\nscope: cluster"));
        Assert.Equal([LimitScope.Runtime, LimitScope.Runtime, LimitScope.Cluster], set.Tenants.Select(t => t.Limits.Scope));
        Assert.Equal(100, set.Tenants[0].Limits.Resolve(TenantLimits.Defaults, replicas: 4).RequestsPerSecond);
        Assert.Equal(100, set.Tenants[1].Limits.Resolve(TenantLimits.Defaults, replicas: 4).RequestsPerSecond);
        Assert.Equal(25, set.Tenants[2].Limits.Resolve(TenantLimits.Defaults, replicas: 4).RequestsPerSecond);
    }

    [Fact]
    public void AnUnknownScopeRefusesOnlyThatTenantNamingTheField()
    {
        var set = Parse(Resources.Tenant("orders", "t1", "scope: node") + Resources.Tenant("billing", "t2"));
        Assert.Equal("billing", Assert.Single(set.Tenants).AppId);
        var refused = Assert.Single(set.RejectedTenants);
        Assert.Contains("spec.limits.scope", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, 100, 200, 10, 20)]
    [InlineData(4, 25, 50, 3, 5)]
    [InlineData(3, 100.0 / 3, 67, 4, 7)]
    [InlineData(50, 2, 4, 1, 1)]
    public void EachReplicaTakesItsShareOfRateBurstConcurrencyAndQueue(int replicas, double rate, int burst, int concurrency, int queue)
    {
        var limits = new TenantLimitsConfig { RequestsPerSecond = 100, Burst = 200, MaxConcurrency = 10, MaxQueue = 20, MaxRequestBodyBytes = 1000, Scope = LimitScope.Cluster }
            .Resolve(TenantLimits.Defaults, replicas);
        Assert.Equal(rate, limits.RequestsPerSecond, 9);
        Assert.Equal((burst, concurrency, queue), (limits.Burst, limits.MaxConcurrency, limits.MaxQueue));
        // Sizes and quotas are not shares: a body or a stored key is as large on every replica.
        Assert.Equal(1000, limits.MaxRequestBodyBytes);
        Assert.Equal(TenantLimits.Defaults.StateMaxKeys, limits.StateMaxKeys);
    }

    [Fact]
    public void DefaultsTakenByAClusterTenantAreSharedToo()
    {
        var limits = new TenantLimitsConfig { Scope = LimitScope.Cluster }.Resolve(TenantLimits.Defaults, replicas: 4);
        Assert.Equal(TenantLimits.Defaults.RequestsPerSecond / 4, limits.RequestsPerSecond);
        Assert.Equal(TenantLimits.Defaults.MaxConcurrency / 4, limits.MaxConcurrency);
    }

    [Fact]
    public void TheClusterServiceFlagNamesANamespaceAndAService()
    {
        Assert.Equal("shared-runtime-system/shared-runtime", RuntimeOptions.Parse(["--cluster-service", "shared-runtime-system/shared-runtime"], _ => null, out _)!.ClusterService);
        Assert.Null(RuntimeOptions.Parse([], _ => null, out _)!.ClusterService);
        Assert.Throws<FormatException>(() => RuntimeOptions.Parse(["--cluster-service", "shared-runtime"], _ => null, out _));
    }
}
