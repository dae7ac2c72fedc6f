using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using SharedRuntime.Admission;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>
/// While the runtime is saturated, tenants are served in proportion to their limits: one over its weighted share is
/// refused (429, rate limited), one under its share is not refused at all. The saturation is reported as constant and
/// the fair share's clock is a fake one that moves only when the test moves it, so the shares are known.
/// </summary>
public sealed class FairShareTests
{
    private static readonly string TwoTenants =
        Resources.Tenant("quiet", "quiet-token", "requestsPerSecond: 20000\nburst: 40000") +
        Resources.Tenant("flood", "flood-token", "requestsPerSecond: 20000\nburst: 40000") +
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
            for (var i = 0; i < 150; i++)
            {
                await StatusAsync(await flood.GetAsync("/v1.0/state/store/k"), HttpStatusCode.OK);
            }
            for (var i = 0; i < 5; i++)
            {
                await StatusAsync(await quiet.GetAsync("/v1.0/state/store/k"), HttpStatusCode.OK);
            }
            time.Advance(FairShare.Period);
        }
        await Eventually.TrueAsync(() => Task.FromResult(fairShare.Scale < 1), TimeSpan.FromSeconds(10), "the saturated runtime scales the rates");
        // Served: 155 requests in 250 ms, 620/s; 10% more is shared by the limits: each tenant may have about 341/s.
        Assert.InRange(fairShare.Scale * 20_000, 320, 360);

        // The clock stands still: the flood has its burst of 100 ms at its share (about 35 requests), then is refused;
        // the quiet tenant's requests, sent among the flood's, all pass: it is under its share.
        var floodAnswers = new List<HttpStatusCode>();
        for (var i = 0; i < 200; i++)
        {
            using var answer = await flood.GetAsync("/v1.0/state/store/k");
            if (answer.StatusCode == HttpStatusCode.TooManyRequests)
            {
                await ErrorAsync(answer, HttpStatusCode.TooManyRequests, "ERR_TENANT_RATE_LIMITED");
            }
            floodAnswers.Add(answer.StatusCode);
            if (i % 20 == 0)
            {
                await StatusAsync(await quiet.GetAsync("/v1.0/state/store/k"), HttpStatusCode.OK);
            }
        }
        Assert.InRange(floodAnswers.Count(s => s == HttpStatusCode.OK), 30, 45);
        Assert.All(floodAnswers, s => Assert.True(s is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, $"{s}"));
        Assert.Contains(HttpStatusCode.TooManyRequests, floodAnswers);
    }
}
