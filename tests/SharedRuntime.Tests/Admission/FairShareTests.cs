using Microsoft.Extensions.Time.Testing;
using SharedRuntime.Admission;

namespace SharedRuntime.Tests.Admission;

/// <summary>
/// The fair share's controller against a simulated server on a fake clock: a server that can spend a fixed budget of
/// work per second, an admitted request costing one unit and a refusal a quarter, and tenants that take turns sending.
/// Unless a test says otherwise, each tenant keeps several requests in flight (<see cref="Flooding"/>): a tenant that
/// keeps at most <see cref="FairShare.ClosedLoop"/> is never capped.
/// </summary>
public sealed class FairShareTests
{
    private static readonly double[] Limits = [1000, 1000, 2000, 4000];

    [Fact]
    public void Below_the_sum_of_the_limits_every_flooding_tenant_is_served_in_proportion_to_its_limit()
    {
        var run = Simulate(capacity: 4000, offered: null, seconds: 10);

        var share = run.Served.Select((s, i) => s / Limits[i]).ToArray();
        Assert.True(Jain(share) >= 0.99, $"served per limit {string.Join(", ", share)}");
        // Most of the capacity still goes to requests: refused clients here ask again at once (no push-back), and each
        // refusal costs a quarter of a request.
        Assert.True(run.Served.Sum() >= 0.75 * 4000, $"served {run.Served.Sum()}/s of 4000");
        Assert.True(run.Level < 1);
    }

    [Fact]
    public void Without_scaling_first_come_first_served_is_what_the_same_server_gives()
    {
        // The figure the controller is measured against: every tenant the same, whatever its limit.
        var run = Simulate(capacity: 4000, offered: null, seconds: 10, fairShare: false);

        var share = run.Served.Select((s, i) => s / Limits[i]).ToArray();
        Assert.True(Jain(share) < 0.85, $"served per limit {string.Join(", ", share)}");
    }

    [Fact]
    public void Above_the_sum_of_the_limits_nobody_is_capped_or_refused()
    {
        // Each tenant sends at its own limit (its token bucket holds it there); the server could do 10,000/s.
        var run = Simulate(capacity: 10_000, offered: Limits, seconds: 10);

        Assert.Equal(1, run.Level);
        Assert.Equal(0, run.Refused.Sum());
        for (var i = 0; i < Limits.Length; i++)
        {
            Assert.InRange(run.Served[i], Limits[i] * 0.99, Limits[i] * 1.01);
        }
    }

    [Fact]
    public void A_tenant_under_its_weighted_share_is_never_refused_while_the_others_are()
    {
        // The first tenant sends 300/s, under its share of 4000 x 1/8 = 500/s; the others flood.
        var run = Simulate(capacity: 4000, offered: [300, double.PositiveInfinity, double.PositiveInfinity, double.PositiveInfinity], seconds: 10);

        Assert.Equal(0, run.RefusedTotal[0]);
        Assert.InRange(run.Served[0], 299, 301);
        Assert.True(run.RefusedTotal.Skip(1).Sum() > 0);
        var others = run.Served.Skip(1).Select((s, i) => s / Limits[i + 1]).ToArray();
        Assert.True(Jain(others) >= 0.99, $"served per limit {string.Join(", ", others)}");
    }

    [Fact]
    public void A_tenant_under_a_quarter_of_an_equal_split_is_not_capped_beside_a_neighbour_with_a_thousand_times_its_limit()
    {
        // By weight alone the first tenant's share of 4000/s would be 4/s; it sends 250/s with requests overlapping,
        // well under a quarter of an equal split (500/s). The neighbour floods.
        var run = Simulate(capacity: 4000, offered: [250, double.PositiveInfinity], seconds: 10, limits: [1000, 1_000_000]);

        Assert.Equal(0, run.RefusedTotal[0]);
        Assert.InRange(run.Served[0], 249, 251);
        // The neighbour takes the rest (its cap cannot go below 1% of its limit, 10,000/s, so it is not refused here).
        Assert.True(run.Served[1] > 3000, $"neighbour served {run.Served[1]}/s");
    }

    [Fact]
    public void Two_flooding_tenants_with_limits_one_to_three_are_served_one_to_three()
    {
        var run = Simulate(capacity: 2000, offered: null, seconds: 10, limits: [1000, 3000]);

        // The tenant refused pays for its refusals out of the capacity: the other stays a little under its cap.
        Assert.InRange(run.Served[1] / run.Served[0], 2.5, 3.3);
        Assert.True(Jain([run.Served[0] / 1000, run.Served[1] / 3000]) >= 0.99);
        Assert.True(run.Level < 1);
    }

    [Fact]
    public void A_tenant_sending_a_handful_of_requests_at_once_next_to_a_flood_is_never_refused()
    {
        // Equal limits; each period the flood sends 500 requests at once and the light tenant five, on a clock that
        // stands still meanwhile. The light tenant is far under its share: it is not capped, so its burst is not
        // shrunk either, while the flood runs past its capped burst.
        var time = new FakeTimeProvider();
        var share = new FairShare(time, static () => true);
        FairShareGate[] gates = [Flooding(share, 10_000), Flooding(share, 10_000)];
        StartCounting(share, gates);
        var floodRefused = 0;
        for (var period = 0; period < 20; period++)
        {
            for (var i = 0; i < 500; i++)
            {
                floodRefused += gates[1].TryPass(out _) ? 0 : 1;
            }
            for (var i = 0; i < 5; i++)
            {
                Assert.True(gates[0].TryPass(out _), $"the light tenant was refused in period {period}");
            }
            time.Advance(FairShare.Period);
            share.Tick(gates, FairShare.Period, saturated: true);
        }
        Assert.Equal(1, gates[0].CapFraction);
        Assert.True(gates[1].CapFraction < 1);
        Assert.True(floodRefused > 0);
    }

    [Fact]
    public void The_capacity_a_light_tenant_leaves_is_shared_by_the_heavy_ones()
    {
        var share = new FairShare(new FakeTimeProvider(), static () => true);
        FairShareGate[] gates = [Flooding(share, 1000), Flooding(share, 1000), Flooding(share, 1000)];
        StartCounting(share, gates);
        Send(gates[..1], 20);
        Send(gates[1..], 500);
        share.Tick(gates, TimeSpan.FromSeconds(1), saturated: true);

        // Served 1,020/s; 1,122/s to share. In proportion to the limits each would have 374/s; the light tenant uses 20,
        // so the two heavy ones have (1,122 - 20) / 2 = 551/s each.
        Assert.Equal(1, gates[0].CapFraction);
        Assert.InRange(gates[1].CapFraction, 0.550, 0.552);
        Assert.InRange(gates[2].CapFraction, 0.550, 0.552);
        Assert.Equal(gates[1].CapFraction, share.Level);
    }

    [Fact]
    public void A_tenant_refused_by_its_cap_stays_capped_however_little_it_got()
    {
        var time = new FakeTimeProvider();
        var share = new FairShare(time, static () => true);
        FairShareGate[] gates = [Flooding(share, 1000), Flooding(share, 1000)];
        StartCounting(share, gates);
        Send(gates, 100);
        share.Tick(gates, TimeSpan.FromSeconds(1), saturated: true);
        Assert.True(gates[0].CapFraction < 1);

        // The clock stands still: the first tenant runs past its burst and is refused; what it got is small.
        var refused = 0;
        for (var i = 0; i < 100; i++)
        {
            refused += gates[0].TryPass(out _) ? 0 : 1;
            gates[1].TryPass(out _);
        }
        share.Tick(gates, TimeSpan.FromSeconds(1), saturated: true);

        Assert.True(refused > 0);
        Assert.True(gates[0].CapFraction < 1);
    }

    [Fact]
    public void When_the_load_ends_the_caps_grow_back_and_the_gates_stop_counting()
    {
        var share = new FairShare(new FakeTimeProvider(), static () => true);
        FairShareGate[] gates = [Flooding(share, 1000), Flooding(share, 1000)];
        StartCounting(share, gates);
        Send(gates, 100);
        share.Tick(gates, TimeSpan.FromSeconds(1), saturated: true);
        // 200/s served, 10% more shared by limits of 2,000/s.
        Assert.InRange(share.Level, 0.109, 0.111);
        Assert.InRange(gates[0].CapFraction, 0.109, 0.111);

        for (var i = 0; i < 20; i++)
        {
            share.Tick(gates, FairShare.Period, saturated: false);
        }
        Assert.Equal(1, share.Level);
        Assert.All(gates, g => Assert.Equal(1, g.CapFraction));
        Assert.False(share.Counting);
    }

    [Fact]
    public void Over_its_cap_a_request_whose_turn_is_near_waits_for_it_and_the_waits_are_spread_at_the_capped_rate()
    {
        var share = new FairShare(new FakeTimeProvider(), static () => true);
        var gate = Flooding(share, 1000);
        StartCounting(share, [gate]);
        // 100/s: a turn every 10 ms. The clock stands still.
        gate.Cap(0.1);

        // The burst the cap tolerates (100 ms of turns, and the first) passes at once.
        for (var i = 0; i <= 10; i++)
        {
            Assert.True(gate.TryPass(null, TimeSpan.FromSeconds(1), out var wait));
            Assert.Equal(TimeSpan.Zero, wait);
        }
        // Then each request takes the next turn: 10 ms later than the one before, up to the longest wait.
        for (var i = 1; i <= 100; i++)
        {
            Assert.True(gate.TryPass(null, TimeSpan.FromSeconds(1), out var wait));
            Assert.Equal(10 * i, wait.TotalMilliseconds, 3);
        }
        // Past it: refused, told when the tenant is within its cap again; the refusal takes no turn.
        Assert.False(gate.TryPass(null, TimeSpan.FromSeconds(1), out var retryAfter));
        Assert.Equal(1010, retryAfter.TotalMilliseconds, 3);
        Assert.False(gate.TryPass(null, TimeSpan.FromSeconds(1), out retryAfter));
        Assert.Equal(1010, retryAfter.TotalMilliseconds, 3);
        // Without a wait allowed, the same request is refused as before.
        Assert.False(gate.TryPass(out retryAfter));
        Assert.Equal(1010, retryAfter.TotalMilliseconds, 3);

        Assert.Equal((114, 3, 0, 114, 100), gate.TakeCounts());
    }

    [Fact]
    public void Requests_that_waited_for_their_turn_count_as_served_and_keep_the_tenant_capped()
    {
        var share = new FairShare(new FakeTimeProvider(), static () => true);
        FairShareGate[] gates = [Flooding(share, 1000), Flooding(share, 1000)];
        // The period that starts the counts is the first saturated one; this is the second.
        StartCounting(share, gates);
        Send(gates, 500);
        share.Tick(gates, TimeSpan.FromSeconds(1), saturated: true);
        // Served 1000/s and 10% more: 550/s each.
        Assert.Equal(0.55, share.Level, 3);

        // A period in which each tenant sent 400 requests, most of them after waiting for their turn: all were served.
        foreach (var gate in gates)
        {
            for (var i = 0; i < 400; i++)
            {
                Assert.True(gate.TryPass(null, TimeSpan.FromSeconds(10), out _));
            }
        }
        share.Tick(gates, TimeSpan.FromSeconds(1), saturated: true);

        Assert.Equal(0.44, share.Level, 3);
        Assert.All(gates, g => Assert.Equal(0.44, g.CapFraction, 3));
    }

    [Fact]
    public void Not_saturated_the_gates_count_nothing()
    {
        var share = new FairShare(new FakeTimeProvider(), static () => false);
        FairShareGate[] gates = [Flooding(share, 1000), Flooding(share, 1000)];
        Send(gates, 100);
        share.Tick(gates, FairShare.Period, saturated: false);

        Assert.False(share.Counting);
        Assert.Equal((0, 0, 0, 0, 0), gates[0].TakeCounts());
    }

    [Fact]
    public void One_saturated_period_alone_or_one_tenant_alone_is_not_capped()
    {
        var share = new FairShare(new FakeTimeProvider(), static () => true);
        FairShareGate[] gates = [Flooding(share, 1000), Flooding(share, 1000)];
        Send(gates, 100);
        share.Tick(gates, TimeSpan.FromSeconds(1), saturated: true);
        Assert.Equal(1, share.Level);

        for (var period = 0; period < 3; period++)
        {
            Send(gates[..1], 100);
            share.Tick(gates, TimeSpan.FromSeconds(1), saturated: true);
        }
        Assert.Equal(1, share.Level);
        Assert.All(gates, g => Assert.Equal(1, g.CapFraction));
    }

    [Fact]
    public void A_tenant_held_at_its_own_limit_does_not_make_the_others_capped()
    {
        // The runtime is busy refusing a flood over its own limit of 20/s: what it serves (the other tenant's 200/s) is
        // not its capacity, and the other tenant is not cut to it.
        var share = new FairShare(new FakeTimeProvider(), static () => true);
        FairShareGate[] gates = [Flooding(share, 1000), Flooding(share, 20)];
        StartCounting(share, gates);
        for (var period = 0; period < 3; period++)
        {
            Send(gates[..1], 200);
            Send(gates[1..], 20);
            for (var i = 0; i < 5000; i++)
            {
                Assert.True(gates[1].TryPass(out _));
                gates[1].Limited();
            }
            share.Tick(gates, TimeSpan.FromSeconds(1), saturated: true);
        }
        Assert.Equal(1, share.Level);
        Assert.All(gates, g => Assert.Equal(1, g.CapFraction));
    }

    [Fact]
    public void A_cap_never_falls_below_its_floor()
    {
        var share = new FairShare(new FakeTimeProvider(), static () => true);
        FairShareGate[] gates = [Flooding(share, 1_000_000), Flooding(share, 1_000_000)];
        StartCounting(share, gates);
        Send(gates, 100);
        share.Tick(gates, TimeSpan.FromSeconds(1), saturated: true);
        Assert.Equal(FairShare.Floor, share.Level);
        Assert.All(gates, g => Assert.Equal(FairShare.Floor, g.CapFraction));
    }

    [Fact]
    public void A_closed_loop_tenant_with_one_request_in_flight_is_never_refused_however_fast_it_sends()
    {
        // Equal limits; each period the closed-loop tenant sends 400 requests one after another on one connection (one in
        // flight, the one it sends) and the flood 400 with several in flight. Both use far more than a quarter of their
        // share: only concurrency tells them apart.
        var time = new FakeTimeProvider();
        var share = new FairShare(time, static () => true);
        FairShareGate[] gates = [new(share, 10_000, new Bulkhead(64, 0)), Flooding(share, 10_000)];
        var connection = new ConnectionTurn();
        StartCounting(share, gates);
        var closedLoopRefused = 0;
        var floodRefused = 0;
        for (var period = 0; period < 20; period++)
        {
            for (var i = 0; i < 400; i++)
            {
                closedLoopRefused += gates[0].TryPass(connection, out _) ? 0 : 1;
                floodRefused += gates[1].TryPass(out _) ? 0 : 1;
            }
            time.Advance(FairShare.Period);
            share.Tick(gates, FairShare.Period, saturated: true);
        }
        Assert.Equal(0, closedLoopRefused);
        Assert.Equal(1, gates[0].CapFraction);
        Assert.True(gates[1].CapFraction < 1);
        Assert.True(floodRefused > 0);
    }

    [Fact]
    public void A_tenant_answered_one_request_at_a_time_on_many_connections_is_capped_as_a_flood()
    {
        // A runtime that answers each request before it reads the next never holds two of the flood's requests; the flood
        // shows by coming back to each of its eight connections after seven others. The closed loop keeps to one.
        var time = new FakeTimeProvider();
        var share = new FairShare(time, static () => true);
        FairShareGate[] gates = [new(share, 10_000, new Bulkhead(64, 0)), new(share, 10_000, new Bulkhead(64, 0))];
        var closedLoop = new ConnectionTurn();
        var flood = Enumerable.Range(0, 8).Select(_ => new ConnectionTurn()).ToArray();
        StartCounting(share, gates);
        var closedLoopRefused = 0;
        var floodRefused = 0;
        for (var period = 0; period < 20; period++)
        {
            for (var i = 0; i < 400; i++)
            {
                closedLoopRefused += gates[0].TryPass(closedLoop, out _) ? 0 : 1;
                floodRefused += gates[1].TryPass(flood[i % flood.Length], out _) ? 0 : 1;
            }
            time.Advance(FairShare.Period);
            share.Tick(gates, FairShare.Period, saturated: true);
        }
        Assert.Equal(0, closedLoopRefused);
        Assert.Equal(1, gates[0].CapFraction);
        Assert.True(gates[1].CapFraction < 1);
        Assert.True(floodRefused > 0);
    }

    [Fact]
    public void A_tenant_whose_calls_overlap_now_and_then_is_not_a_flood()
    {
        // A closed loop with a background call now and then: one attempt in ten finds three in flight, one in ten comes
        // on a connection it left a while ago. Far from the flood's every attempt.
        var time = new FakeTimeProvider();
        var share = new FairShare(time, static () => true);
        var bulkhead = new Bulkhead(64, 0);
        FairShareGate[] gates = [new(share, 10_000, bulkhead), Flooding(share, 10_000)];
        ConnectionTurn[] connections = [new(), new()];
        StartCounting(share, gates);
        var refused = 0;
        for (var period = 0; period < 20; period++)
        {
            for (var i = 0; i < 400; i++)
            {
                var background = i % 10 == 0;
                if (background)
                {
                    Assert.True(bulkhead.TryEnter());
                    Assert.True(bulkhead.TryEnter());
                }
                refused += gates[0].TryPass(connections[i % 10 == 5 ? 1 : 0], out _) ? 0 : 1;
                if (background)
                {
                    bulkhead.Exit();
                    bulkhead.Exit();
                }
                gates[1].TryPass(out _);
            }
            time.Advance(FairShare.Period);
            share.Tick(gates, FairShare.Period, saturated: true);
        }
        Assert.Equal(0, refused);
        Assert.Equal(1, gates[0].CapFraction);
        Assert.True(gates[1].CapFraction < 1);
    }

    /// <summary>A tenant's gate whose bulkhead holds three requests in flight: every attempt overlaps others.</summary>
    private static FairShareGate Flooding(FairShare share, double limit)
    {
        var bulkhead = new Bulkhead(64, 0);
        for (var i = 0; i < FairShare.ClosedLoop + 1; i++)
        {
            Assert.True(bulkhead.TryEnter());
        }
        return new FairShareGate(share, limit, bulkhead);
    }

    private static void Send(FairShareGate[] gates, int requests)
    {
        foreach (var gate in gates)
        {
            for (var i = 0; i < requests; i++)
            {
                Assert.True(gate.TryPass(out _));
            }
        }
    }

    /// <summary>A saturated period with nothing counted yet: the gates start counting.</summary>
    private static void StartCounting(FairShare share, FairShareGate[] gates)
    {
        share.Tick(gates, FairShare.Period, saturated: true);
        Assert.True(share.Counting);
    }

    private sealed record Run(double[] Served, double[] Refused, long[] RefusedTotal, double Level);

    /// <summary>
    /// Runs the server for <paramref name="seconds"/> in steps of 1 ms; reports each tenant's served and refused rates
    /// over the last half (and the refusals over the whole run). <paramref name="offered"/>: each tenant's sending rate (infinity: as fast as it is answered);
    /// null: all flood.
    /// </summary>
    private static Run Simulate(double capacity, double[]? offered, int seconds, bool fairShare = true, double[]? limits = null)
    {
        limits ??= Limits;
        var time = new FakeTimeProvider();
        var saturated = false;
        var share = new FairShare(time, () => saturated);
        var gates = limits.Select(l => Flooding(share, l)).ToArray();
        offered ??= [.. limits.Select(_ => double.PositiveInfinity)];
        var served = new long[gates.Length];
        var refused = new long[gates.Length];
        var refusedTotal = new long[gates.Length];
        var sent = new double[gates.Length];
        var step = TimeSpan.FromMilliseconds(1);
        var steps = seconds * 1000;
        var budget = 0.0;
        var busySteps = 0;
        var next = 0;
        for (var t = 0; t < steps; t++)
        {
            if (t == steps / 2)
            {
                Array.Clear(served);
                Array.Clear(refused);
            }
            for (var i = 0; i < gates.Length; i++)
            {
                sent[i] = Math.Min(sent[i] + offered[i] * step.TotalSeconds, 1e9);
            }
            budget = Math.Min(budget + capacity * step.TotalSeconds, capacity * step.TotalSeconds);
            var busy = false;
            while (budget > 0)
            {
                // Tenants take turns; one that has nothing to send is skipped.
                var i = Enumerable.Range(0, gates.Length).Select(k => (next + k) % gates.Length).FirstOrDefault(k => sent[k] >= 1, -1);
                if (i < 0)
                {
                    break;
                }
                next = (i + 1) % gates.Length;
                sent[i]--;
                if (!fairShare || gates[i].TryPass(out _))
                {
                    served[i]++;
                    budget -= 1;
                }
                else
                {
                    refused[i]++;
                    refusedTotal[i]++;
                    budget -= 0.25;
                }
                busy = budget <= 0;
            }
            busySteps += busy ? 1 : 0;
            time.Advance(step);
            if ((t + 1) % (int)FairShare.Period.TotalMilliseconds == 0)
            {
                saturated = busySteps >= 0.9 * FairShare.Period.TotalMilliseconds;
                busySteps = 0;
                if (fairShare)
                {
                    share.Tick(gates, FairShare.Period, saturated);
                }
            }
        }
        var half = seconds / 2.0;
        return new Run([.. served.Select(s => s / half)], [.. refused.Select(r => r / half)], refusedTotal, share.Level);
    }

    private static double Jain(double[] x) => x.Sum() * x.Sum() / (x.Length * x.Sum(v => v * v));
}
