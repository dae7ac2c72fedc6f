using SharedRuntime.Admission;
using SharedRuntime.Configuration;
using SharedRuntime.Host;

namespace SharedRuntime.Tests.Configuration;

public class MemoryLimitTests
{
    private static ResourceSet Parse(string yaml) =>
        ResourceParser.Parse(ResourceReader.ReadText("tenants.yaml", yaml), _ => null);

    [Fact]
    public void A_tenant_sets_its_memory_budget_and_others_take_the_runtime_default()
    {
        var set = Parse(Resources.Tenant("orders", "t-orders", "maxMemoryBytes: 1048576") + Resources.Tenant("billing", "t-billing"));
        var defaults = TenantLimits.Defaults with { MaxMemoryBytes = 5000 };

        Assert.Equal(1048576, set.Tenants[0].Limits.Resolve(defaults).MaxMemoryBytes);
        Assert.Equal(5000, set.Tenants[1].Limits.Resolve(defaults).MaxMemoryBytes);
        Assert.Equal(64L * 1024 * 1024, TenantLimits.Defaults.MaxMemoryBytes);
    }

    [Fact]
    public void A_tenant_with_a_negative_memory_budget_is_refused_with_its_field()
    {
        var set = Parse(Resources.Tenant("orders", "t", "maxMemoryBytes: -1"));
        Assert.Empty(set.Tenants);
        Assert.Contains("maxMemoryBytes", Assert.Single(set.RejectedTenants).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Flags_set_the_default_tenant_budget_and_the_node_ceiling()
    {
        var defaults = RuntimeOptions.Parse([], _ => null, out _)!;
        Assert.Equal(MemoryBudget.DefaultNodeBytes, defaults.MaxMemoryBytes);
        Assert.Equal(192L * 1024 * 1024, defaults.MaxMemoryBytes);

        var options = RuntimeOptions.Parse(["--default-max-memory-bytes", "32Mi", "--max-memory-bytes=128Mi"], _ => null, out _)!;
        Assert.Equal(32L * 1024 * 1024, options.DefaultLimits.MaxMemoryBytes);
        Assert.Equal(128L * 1024 * 1024, options.MaxMemoryBytes);

        var fromEnvironment = RuntimeOptions.Parse([], name => name == "SHAREDRUNTIME_MAX_MEMORY_BYTES" ? "100Mi" : null, out _)!;
        Assert.Equal(100L * 1024 * 1024, fromEnvironment.MaxMemoryBytes);
    }
}
