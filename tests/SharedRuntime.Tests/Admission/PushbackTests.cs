using Microsoft.Extensions.Time.Testing;
using SharedRuntime.Admission;

namespace SharedRuntime.Tests.Admission;

public sealed class PushbackTests
{
    [Fact]
    public void The_first_refusal_after_the_announced_wait_is_answered_at_once_and_the_next_ones_are_early()
    {
        var time = new FakeTimeProvider();
        var refusals = new TenantRefusals();

        Assert.Equal(TimeSpan.Zero, refusals.Refused(time.GetTimestamp(), TimeSpan.FromSeconds(1), time));
        time.Advance(TimeSpan.FromMilliseconds(300));
        Assert.Equal(TimeSpan.FromMilliseconds(700), refusals.Refused(time.GetTimestamp(), TimeSpan.FromSeconds(1), time));
        time.Advance(TimeSpan.FromMilliseconds(700));
        // The client waited as told: its next refusal opens a new wait and is answered at once.
        Assert.Equal(TimeSpan.Zero, refusals.Refused(time.GetTimestamp(), TimeSpan.FromSeconds(1), time));
    }

    [Fact]
    public void Parking_is_bounded_per_tenant_and_for_the_node_and_capped_in_time()
    {
        var time = new FakeTimeProvider();
        var pushback = new Pushback(new PushbackOptions(TimeSpan.FromMilliseconds(500), MaxParked: 8), time);
        var flooding = new TenantRefusals();
        var other = new TenantRefusals();

        for (var i = 0; i < 2; i++)
        {
            Assert.True(pushback.TryPark(flooding, TimeSpan.FromSeconds(30), out var delay));
            Assert.Equal(TimeSpan.FromMilliseconds(500), delay);
        }
        // A quarter of the node's 8 places per tenant: the third is answered at once.
        Assert.False(pushback.TryPark(flooding, TimeSpan.FromSeconds(30), out _));
        Assert.Equal(2, flooding.Parked);
        Assert.True(pushback.TryPark(other, TimeSpan.FromMilliseconds(100), out var shortDelay));
        Assert.Equal(TimeSpan.FromMilliseconds(100), shortDelay);
        Assert.Equal(3, pushback.Parked);

        pushback.Release(flooding);
        pushback.Release(flooding);
        pushback.Release(other);
        Assert.Equal(0, pushback.Parked);
        Assert.Equal(0, flooding.Parked);
        Assert.False(new Pushback(PushbackOptions.Off, time).TryPark(flooding, TimeSpan.FromSeconds(1), out _));
    }

    [Fact]
    public void Refusals_are_tallied_into_one_log_line_per_interval()
    {
        var time = new FakeTimeProvider();
        var refusals = new TenantRefusals();
        var interval = TimeSpan.FromSeconds(10);
        var lines = new List<int>();

        for (var second = 0; second < 25; second++)
        {
            for (var i = 0; i < 1000; i++)
            {
                if (refusals.Tally(RejectionReason.RateLimited, time.GetTimestamp(), interval, time, out var count))
                {
                    lines.Add(count);
                }
            }
            time.Advance(TimeSpan.FromSeconds(1));
        }

        // 25,000 refusals over 25 s: the first at once, then one line every 10 s with what accrued.
        Assert.Equal([1, 10_000, 10_000], lines);
        Assert.True(refusals.Tally(RejectionReason.BulkheadFull, time.GetTimestamp(), interval, time, out var other));
        Assert.Equal(1, other);
    }
}
