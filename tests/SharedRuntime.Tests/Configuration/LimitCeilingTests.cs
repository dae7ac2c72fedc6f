using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.Configuration;

public sealed class LimitCeilingTests
{
    private static readonly LimitCeiling Small = new(["small"],
        new TenantLimitsConfig { MaxConcurrency = 8, RequestsPerSecond = 5 },
        new TenantLimitsConfig { RequestsPerSecond = 10, MaxRequestBodyBytes = 1024, StateMaxKeys = 50 });

    [Fact]
    public void ATenantGetsTheLesserOfWhatItAsksAndTheMaximumAndTheDefaultsWhereItAsksNothing()
    {
        var limits = new TenantLimitsConfig { RequestsPerSecond = 1000, MaxConcurrency = 2 }.Resolve(TenantLimits.Defaults, ceiling: Small);
        Assert.Equal(10, limits.RequestsPerSecond);
        Assert.Equal(2, limits.MaxConcurrency);
        Assert.Equal(1024, limits.MaxRequestBodyBytes);
        // Unset and without a policy default, the runtime default holds, still under the maximum.
        Assert.Equal(50, limits.StateMaxKeys);
        Assert.Equal(TenantLimits.Defaults.MaxQueue, limits.MaxQueue);

        var unset = TenantLimitsConfig.Empty.Resolve(TenantLimits.Defaults, ceiling: Small);
        Assert.Equal(5, unset.RequestsPerSecond);
        Assert.Equal(5, unset.Burst);
        Assert.Equal(8, unset.MaxConcurrency);
    }

    [Fact]
    public void OnlyWhatTheTenantAskedAboveTheMaximumIsReportedAsClamped()
    {
        Assert.Equal(["requestsPerSecond 1000 > 10"], Small.Clamps(new TenantLimitsConfig { RequestsPerSecond = 1000, MaxConcurrency = 100 }));
        Assert.Empty(Small.Clamps(TenantLimitsConfig.Empty));
    }

    [Fact]
    public void SeveralPoliciesOnOneNamespaceGiveTheLeastOfEachLimit()
    {
        var other = new LimitCeiling(["other"], new TenantLimitsConfig { MaxConcurrency = 4 }, new TenantLimitsConfig { RequestsPerSecond = 20, MaxQueue = 3 });
        var combined = LimitCeiling.Combine([Small, other])!;
        Assert.Equal(["small", "other"], combined.Policies);
        Assert.Equal(10, combined.Maximum.RequestsPerSecond);
        Assert.Equal(3, combined.Maximum.MaxQueue);
        Assert.Equal(4, combined.Defaults.MaxConcurrency);
        Assert.Null(LimitCeiling.Combine([]));
    }

    [Fact]
    public void WithoutACeilingResolvingIsUnchanged()
    {
        var asked = new TenantLimitsConfig { RequestsPerSecond = 7 };
        Assert.Equal(asked.Resolve(TenantLimits.Defaults), asked.Resolve(TenantLimits.Defaults, ceiling: null));
        Assert.Equal(7, asked.Resolve(TenantLimits.Defaults).Burst);
    }
}
