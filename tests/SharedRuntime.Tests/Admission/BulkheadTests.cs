using SharedRuntime.Admission;
using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.Admission;

public class BulkheadTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task AdmitsUpToTheLimitThenRefusesWithoutAQueue()
    {
        var bulkhead = new Bulkhead(2, 0);
        Assert.True(bulkhead.TryEnter());
        Assert.True(bulkhead.TryEnter());
        Assert.False(bulkhead.TryEnter());
        Assert.False(await bulkhead.EnterAsync(CancellationToken.None));
        bulkhead.Exit();
        Assert.True(bulkhead.TryEnter());
        Assert.Equal(2, bulkhead.InFlight);
    }

    [Fact]
    public async Task WaitersGetSlotsInOrderAndTheLineIsBounded()
    {
        var bulkhead = new Bulkhead(1, 2);
        Assert.True(bulkhead.TryEnter());
        var first = bulkhead.EnterAsync(CancellationToken.None).AsTask();
        var second = bulkhead.EnterAsync(CancellationToken.None).AsTask();
        Assert.False(await bulkhead.EnterAsync(CancellationToken.None));
        Assert.False(first.IsCompleted);

        bulkhead.Exit();
        Assert.True(await first.WaitAsync(Timeout));
        Assert.False(second.IsCompleted);
        bulkhead.Exit();
        Assert.True(await second.WaitAsync(Timeout));
        Assert.Equal(1, bulkhead.InFlight);
    }

    [Fact]
    public async Task ACancelledWaiterLeavesTheLineAndDoesNotLoseTheSlot()
    {
        var bulkhead = new Bulkhead(1, 1);
        Assert.True(bulkhead.TryEnter());
        using var cts = new CancellationTokenSource();
        var waiting = bulkhead.EnterAsync(cts.Token).AsTask();
        cts.Cancel();
        Assert.False(await waiting.WaitAsync(Timeout));
        Assert.Equal(0, bulkhead.Queued);
        bulkhead.Exit();
        Assert.Equal(0, bulkhead.InFlight);
        Assert.True(bulkhead.TryEnter());
    }

    [Fact]
    public void TokenBucketAllowsTheBurstThenRefusesWithARetryAfter()
    {
        using var admission = new TenantAdmission(TenantLimits.Defaults with { RequestsPerSecond = 1, Burst = 3 });
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(RejectionReason.None, admission.TryEnter(out _));
            admission.Exit();
        }
        Assert.Equal(RejectionReason.RateLimited, admission.TryEnter(out var retryAfter));
        Assert.InRange(retryAfter, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void TwoTenantsHaveIndependentBuckets()
    {
        using var noisy = new TenantAdmission(TenantLimits.Defaults with { RequestsPerSecond = 1, Burst = 1 });
        using var quiet = new TenantAdmission(TenantLimits.Defaults with { RequestsPerSecond = 1, Burst = 1 });
        Assert.Equal(RejectionReason.None, noisy.TryEnter(out _));
        Assert.Equal(RejectionReason.RateLimited, noisy.TryEnter(out _));
        Assert.Equal(RejectionReason.None, quiet.TryEnter(out _));
    }
}
