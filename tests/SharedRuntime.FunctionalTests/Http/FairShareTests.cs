using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using SharedRuntime.Admission;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>
/// While the runtime is saturated, tenants are served in proportion to their limits: one over its weighted share with
/// several requests in flight (a flood: here batches sent at once, on several connections) is refused (429, rate
/// limited); one under its share, sending a handful of requests, or waiting for each answer before it sends the next
/// (a closed loop) is not refused at all. The saturation is reported as constant and the fair share's clock is a fake
/// one that moves only when the test moves it, so the shares are known.
/// </summary>
public sealed class FairShareTests
{
    private static readonly string TwoTenants =
        Resources.Tenant("fair-quiet", "quiet-token", "requestsPerSecond: 20000\nburst: 40000") +
        Resources.Tenant("fair-flood", "flood-token", "requestsPerSecond: 20000\nburst: 40000") +
        Resources.Component("store", "state.in-memory");

    [Fact]
    public async Task Under_saturation_a_tenant_over_its_weighted_share_is_refused_and_one_under_it_never_is()
    {
        var time = new FakeTimeProvider();
        var fairShare = new FairShare(time, static () => true);
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string> { ["r.yaml"] = TwoTenants },
            o => o with { PushbackMaxDelayMilliseconds = 0 }, services => services.AddSingleton(fairShare));
        var quiet = runtime.Client("quiet-token");
        var flood = runtime.Client("flood-token");
        await StatusAsync(await quiet.PostAsync("/v1.0/state/store", Json("""[{"key":"k","value":1}]""")), HttpStatusCode.NoContent);
        await StatusAsync(await flood.PostAsync("/v1.0/state/store", Json("""[{"key":"k","value":1}]""")), HttpStatusCode.NoContent);

        // Two periods in which the flood took 150 requests and the quiet tenant 5: what the runtime served.
        for (var period = 0; period < FairShare.SaturatedPeriods; period++)
        {
            for (var batch = 0; batch < 15; batch++)
            {
                Assert.All(await AtOnceAsync(flood, 10), s => Assert.Equal(HttpStatusCode.OK, s));
            }
            for (var i = 0; i < 5; i++)
            {
                await StatusAsync(await quiet.GetAsync("/v1.0/state/store/k"), HttpStatusCode.OK);
            }
            time.Advance(FairShare.Period);
        }
        await Eventually.TrueAsync(() => Task.FromResult(fairShare.Level < 1), TimeSpan.FromSeconds(10), "the saturated runtime caps the flood");
        // The first saturated period starts the counts; the second is read. Served: 155 requests in 250 ms, 620/s, and
        // 10% more, 682/s; the quiet tenant sent a handful (20/s) and keeps it, the flood may have the rest, 662/s.
        Assert.InRange(fairShare.Level * 20_000, 640, 680);

        // The clock stands still: the flood has its burst of 100 ms at its cap (about 66 requests), then is refused;
        // the quiet tenant's requests, sent among the flood's, all pass: it is not capped.
        var floodAnswers = new List<HttpStatusCode>();
        for (var batch = 0; batch < 20; batch++)
        {
            floodAnswers.AddRange(await AtOnceAsync(flood, 10));
            await StatusAsync(await quiet.GetAsync("/v1.0/state/store/k"), HttpStatusCode.OK);
        }
        Assert.InRange(floodAnswers.Count(s => s == HttpStatusCode.OK), 60, 75);
        Assert.All(floodAnswers, s => Assert.True(s is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, $"{s}"));
        Assert.Contains(HttpStatusCode.TooManyRequests, floodAnswers);

        // The refusal says it is the fair share, not the tenant's own limit, and is counted as such.
        var refusal = await ErrorAsync(await flood.GetAsync("/v1.0/state/store/k"), HttpStatusCode.TooManyRequests, "ERR_TENANT_RATE_LIMITED");
        Assert.Contains("app fair-flood is within its rate limit but over its fair share of the runtime", refusal, StringComparison.Ordinal);
        using var scraper = new HttpClient { BaseAddress = runtime.MetricsAddress };
        var lines = (await scraper.GetStringAsync("/metrics")).Split('\n').Where(l => l.StartsWith("sharedruntime_rejections_total{", StringComparison.Ordinal)).ToArray();
        Assert.Contains(lines, l => l.Contains("app_id=\"fair-flood\"", StringComparison.Ordinal) && l.Contains("reason=\"fair_share\"", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => (l.Contains("reason=\"rate_limited\"", StringComparison.Ordinal) && l.Contains("app_id=\"fair-", StringComparison.Ordinal)) || l.Contains("app_id=\"fair-quiet\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Under_saturation_with_push_back_a_flood_over_its_share_waits_for_its_turns_and_is_refused_only_past_the_longest_wait()
    {
        var time = new FakeTimeProvider();
        var fairShare = new FairShare(time, static () => true);
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string> { ["r.yaml"] = TwoTenants },
            o => o with { PushbackMaxDelayMilliseconds = 100 }, services => services.AddSingleton(fairShare));
        var quiet = runtime.Client("quiet-token");
        var flood = runtime.Client("flood-token");
        await StatusAsync(await quiet.PostAsync("/v1.0/state/store", Json("""[{"key":"k","value":1}]""")), HttpStatusCode.NoContent);
        await StatusAsync(await flood.PostAsync("/v1.0/state/store", Json("""[{"key":"k","value":1}]""")), HttpStatusCode.NoContent);
        for (var period = 0; period < FairShare.SaturatedPeriods; period++)
        {
            for (var batch = 0; batch < 15; batch++)
            {
                Assert.All(await AtOnceAsync(flood, 10), s => Assert.Equal(HttpStatusCode.OK, s));
            }
            for (var i = 0; i < 5; i++)
            {
                await StatusAsync(await quiet.GetAsync("/v1.0/state/store/k"), HttpStatusCode.OK);
            }
            time.Advance(FairShare.Period);
        }
        await Eventually.TrueAsync(() => Task.FromResult(fairShare.Level < 1), TimeSpan.FromSeconds(10), "the saturated runtime caps the flood");
        Assert.InRange(fairShare.Level * 20_000, 640, 680);

        // The fair share's clock stands still: the flood has its burst of 100 ms at its cap (about 66 requests) at once,
        // then its turns of the next 100 ms (the longest wait here, about 66 more), each request waiting for its own;
        // only past them is it refused. Without push-back the same flood is refused right after its burst (the test
        // above). The quiet tenant's requests, sent among the flood's, all pass.
        var floodAnswers = new List<HttpStatusCode>();
        for (var batch = 0; batch < 20; batch++)
        {
            floodAnswers.AddRange(await AtOnceAsync(flood, 10));
            await StatusAsync(await quiet.GetAsync("/v1.0/state/store/k"), HttpStatusCode.OK);
        }
        Assert.InRange(floodAnswers.Count(s => s == HttpStatusCode.OK), 120, 145);
        Assert.All(floodAnswers, s => Assert.True(s is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, $"{s}"));
        Assert.Contains(HttpStatusCode.TooManyRequests, floodAnswers);
        using var scraper = new HttpClient { BaseAddress = runtime.MetricsAddress };
        var lines = (await scraper.GetStringAsync("/metrics")).Split('\n').Where(l => l.StartsWith("sharedruntime_rejections_total{", StringComparison.Ordinal)).ToArray();
        Assert.DoesNotContain(lines, l => l.Contains("app_id=\"fair-quiet\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Under_saturation_a_light_tenant_is_never_refused_and_flooding_tenants_are_served_by_their_limits()
    {
        var time = new FakeTimeProvider();
        var fairShare = new FairShare(time, static () => true);
        var resources =
            Resources.Tenant("light", "light-token", "requestsPerSecond: 10000\nburst: 40000") +
            Resources.Tenant("one", "one-token", "requestsPerSecond: 10000\nburst: 40000") +
            Resources.Tenant("three", "three-token", "requestsPerSecond: 30000\nburst: 40000") +
            Resources.Component("store", "state.in-memory");
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string> { ["r.yaml"] = resources },
            o => o with { PushbackMaxDelayMilliseconds = 0 }, services => services.AddSingleton(fairShare));
        var light = runtime.Client("light-token");
        HttpClient[] floods = [runtime.Client("one-token"), runtime.Client("three-token")];
        foreach (var client in (HttpClient[])[light, .. floods])
        {
            await StatusAsync(await client.PostAsync("/v1.0/state/store", Json("""[{"key":"k","value":1}]""")), HttpStatusCode.NoContent);
        }

        // Two periods in which each flood takes 60 requests, ten at once, and the light tenant 3: the second is the one read.
        for (var period = 0; period < FairShare.SaturatedPeriods; period++)
        {
            foreach (var flood in floods)
            {
                for (var batch = 0; batch < 6; batch++)
                {
                    Assert.All(await AtOnceAsync(flood, 10), s => Assert.Equal(HttpStatusCode.OK, s));
                }
            }
            for (var i = 0; i < 3; i++)
            {
                await StatusAsync(await light.GetAsync("/v1.0/state/store/k"), HttpStatusCode.OK);
            }
            time.Advance(FairShare.Period);
        }
        await Eventually.TrueAsync(() => Task.FromResult(fairShare.Level < 1), TimeSpan.FromSeconds(10), "the saturated runtime caps the floods");

        // Two periods in steps of 10 ms: each flood sends 1,000/s, ten at once, above its cap (about 132/s and 397/s at
        // first); the light tenant sends a few requests a period.
        var served = new int[floods.Length];
        var refused = new int[floods.Length];
        for (var step = 0; step < 2 * 25; step++)
        {
            for (var f = 0; f < floods.Length; f++)
            {
                foreach (var status in await AtOnceAsync(floods[f], 10))
                {
                    Assert.True(status is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, $"{status}");
                    served[f] += status == HttpStatusCode.OK ? 1 : 0;
                    refused[f] += status == HttpStatusCode.TooManyRequests ? 1 : 0;
                }
            }
            if (step % 10 == 0)
            {
                using var answer = await light.GetAsync("/v1.0/state/store/k");
                Assert.True(answer.StatusCode == HttpStatusCode.OK, $"the light tenant got {(int)answer.StatusCode} at step {step}");
            }
            time.Advance(TimeSpan.FromMilliseconds(10));
        }

        Assert.All(refused, r => Assert.True(r > 0, $"refused {string.Join(", ", refused)}"));
        var ratio = (double)served[1] / served[0];
        Assert.True(ratio is > 2.2 and < 3.8, $"served {served[0]} and {served[1]}: {ratio:0.00}, not about 1:3");
    }

    /// <summary>
    /// The bystander of a flood calls back to back, one request in flight, hundreds a period: far more than a handful
    /// and far more than a quarter of its share, as much as the flood is served. It is never refused; the flood is capped.
    /// </summary>
    [Fact]
    public async Task Under_saturation_a_closed_loop_tenant_next_to_a_flood_is_never_refused_however_fast_it_is_answered()
    {
        var time = new FakeTimeProvider();
        var fairShare = new FairShare(time, static () => true);
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string> { ["r.yaml"] = TwoTenants },
            o => o with { PushbackMaxDelayMilliseconds = 0 }, services => services.AddSingleton(fairShare));
        var closedLoop = runtime.Client("quiet-token");
        var flood = runtime.Client("flood-token");
        await StatusAsync(await closedLoop.PostAsync("/v1.0/state/store", Json("""[{"key":"k","value":1}]""")), HttpStatusCode.NoContent);
        await StatusAsync(await flood.PostAsync("/v1.0/state/store", Json("""[{"key":"k","value":1}]""")), HttpStatusCode.NoContent);

        var closedLoopAnswers = new List<HttpStatusCode>();
        var floodAnswers = new List<HttpStatusCode>();
        for (var period = 0; period < 6; period++)
        {
            for (var step = 0; step < 20; step++)
            {
                floodAnswers.AddRange(await AtOnceAsync(flood, 10));
                for (var i = 0; i < 10; i++)
                {
                    using var answer = await closedLoop.GetAsync("/v1.0/state/store/k");
                    closedLoopAnswers.Add(answer.StatusCode);
                }
            }
            time.Advance(FairShare.Period);
        }

        Assert.Equal(1200, closedLoopAnswers.Count(s => s == HttpStatusCode.OK));
        Assert.True(fairShare.Level < 1, $"level {fairShare.Level}");
        Assert.Contains(HttpStatusCode.TooManyRequests, floodAnswers);
        Assert.All(floodAnswers, s => Assert.True(s is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, $"{s}"));
    }

    /// <summary>Sends <paramref name="count"/> GETs at once (on as many connections as the client opens for them); their statuses.</summary>
    private static async Task<HttpStatusCode[]> AtOnceAsync(HttpClient client, int count)
    {
        var answers = await Task.WhenAll(Enumerable.Range(0, count).Select(_ => client.GetAsync("/v1.0/state/store/k")));
        var statuses = new HttpStatusCode[count];
        for (var i = 0; i < count; i++)
        {
            using var answer = answers[i];
            if (answer.StatusCode == HttpStatusCode.TooManyRequests)
            {
                await ErrorAsync(answer, HttpStatusCode.TooManyRequests, "ERR_TENANT_RATE_LIMITED");
            }
            statuses[i] = answer.StatusCode;
        }
        return statuses;
    }
}
