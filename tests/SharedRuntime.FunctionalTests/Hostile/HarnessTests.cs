namespace SharedRuntime.FunctionalTests.Hostile;

[Collection(HostileTenantsCollection.Name)]
public sealed class HarnessTests
{
    [Fact]
    public async Task An_idle_runtime_serves_the_bystander_and_reports_its_peak_rss()
    {
        await using var runtime = await HostileRuntime.StartAsync();
        var peak = await runtime.AssertSurvivedAsync();
        Assert.True(peak > 10 * 1024 * 1024, $"peak RSS {peak} is not a process's");
        using var refused = await runtime.NewClient("no-such-token").GetAsync("/v1.0/metadata");
        await HostileRuntime.AssertClientErrorAsync(refused, "ERR_TENANT_UNAUTHENTICATED");
    }
}
