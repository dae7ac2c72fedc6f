using SharedRuntime.Admission;

namespace SharedRuntime.Tests.Admission;

public class MemoryBudgetTests
{
    [Fact]
    public void A_tenant_is_charged_up_to_its_budget_and_refused_beyond_it_until_it_releases()
    {
        var node = new MemoryBudget(1000);
        var tenant = new MemoryBudget(100, node);

        Assert.Equal(MemoryCharge.Charged, tenant.TryCharge(60));
        Assert.Equal(MemoryCharge.Charged, tenant.TryCharge(40));
        Assert.Equal(MemoryCharge.TenantFull, tenant.TryCharge(1));
        Assert.Equal(100, tenant.InUse);
        Assert.Equal(100, node.InUse);

        tenant.Release(60);
        Assert.Equal(MemoryCharge.Charged, tenant.TryCharge(50));
        Assert.Equal(90, node.InUse);
    }

    [Fact]
    public void A_charge_larger_than_the_budget_or_the_node_ceiling_never_fits()
    {
        var node = new MemoryBudget(150);
        var tenant = new MemoryBudget(200, node);
        Assert.Equal(MemoryCharge.NeverFits, new MemoryBudget(100, node).TryCharge(101));
        Assert.Equal(MemoryCharge.NeverFits, tenant.TryCharge(151));
        Assert.Equal(0, node.InUse);
        Assert.Equal(0, tenant.InUse);
    }

    [Fact]
    public void The_node_ceiling_refuses_a_tenant_within_its_budget_and_charges_neither_counter()
    {
        var node = new MemoryBudget(150);
        var first = new MemoryBudget(100, node);
        var second = new MemoryBudget(100, node);

        Assert.Equal(MemoryCharge.Charged, first.TryCharge(100));
        Assert.Equal(MemoryCharge.NodeFull, second.TryCharge(60));
        Assert.Equal(0, second.InUse);
        Assert.Equal(100, node.InUse);
        Assert.Equal(MemoryCharge.Charged, second.TryCharge(50));

        first.Release(100);
        Assert.Equal(MemoryCharge.Charged, second.TryCharge(50));
        Assert.Equal(100, node.InUse);
    }

    [Fact]
    public void A_request_gives_back_everything_it_held_when_it_ends()
    {
        var node = new MemoryBudget(1000);
        var tenant = new MemoryBudget(100, node);
        using (var request = new RequestMemory(tenant, "app"))
        {
            Assert.Equal(MemoryCharge.Charged, request.TryCharge(30));
            Assert.Equal(MemoryCharge.Charged, request.TryCharge(20));
            request.Release(10);
            Assert.Equal(40, request.Charged);
            Assert.Equal(40, tenant.InUse);
        }
        Assert.Equal(0, tenant.InUse);
        Assert.Equal(0, node.InUse);
    }

    [Fact]
    public void A_request_that_alone_outgrows_its_tenant_budget_never_fits_while_one_held_back_by_others_may_retry()
    {
        var tenant = new MemoryBudget(100, new MemoryBudget(1000));
        using var other = new RequestMemory(tenant, "app");
        using var request = new RequestMemory(tenant, "app");

        Assert.Equal(MemoryCharge.Charged, other.TryCharge(70));
        Assert.Equal(MemoryCharge.TenantFull, request.TryCharge(40));
        Assert.Equal(MemoryCharge.Charged, request.TryCharge(30));
        Assert.Equal(MemoryCharge.NeverFits, request.TryCharge(71));
        Assert.Equal(30, request.Charged);
        Assert.Equal(MemoryCharge.Charged, request.Refusal);
    }

    [Fact]
    public async Task Parallel_charges_never_overshoot_the_budget()
    {
        var node = new MemoryBudget(1_000_000);
        var tenant = new MemoryBudget(1000, node);
        var charged = 0L;
        await Parallel.ForAsync(0, 10_000, async (_, _) =>
        {
            if (tenant.TryCharge(7) == MemoryCharge.Charged)
            {
                Interlocked.Add(ref charged, 7);
                Assert.True(tenant.InUse <= 1000);
                await Task.Yield();
                tenant.Release(7);
                Interlocked.Add(ref charged, -7);
            }
        });
        Assert.Equal(0, tenant.InUse);
        Assert.Equal(0, node.InUse);
        Assert.Equal(0, charged);
    }
}
