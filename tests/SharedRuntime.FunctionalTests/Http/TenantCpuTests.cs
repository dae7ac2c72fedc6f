using System.Globalization;
using System.Net;
using System.Text;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>
/// <c>sharedruntime_tenant_cpu_seconds_total</c> is measured from the threads' CPU clocks while they run each tenant's
/// requests: two tenants doing the same requests at the same time, one three times as many, are charged CPU in that
/// proportion.
/// </summary>
public sealed class TenantCpuTests
{
    private const int LightRequests = 600;
    private const int Ratio = 3;

    // Meters are process-wide and other tests run runtimes in this process too: the app-ids here are used nowhere else.
    [Fact]
    public async Task TwoTenantsAreChargedCpuInProportionToTheirWork()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // thread CPU time is read on Linux only
        }
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("cpu-heavy", "heavy-token") + Resources.Tenant("cpu-light", "light-token") + Resources.Component("store", "state.in-memory"));
        var heavy = runtime.Client("heavy-token");
        var light = runtime.Client("light-token");
        // The same value for both, large enough that a GET is mostly the runtime's own work on it.
        var value = $"\"{new string('x', 64 * 1024)}\"";
        foreach (var client in new[] { heavy, light })
        {
            using var saved = await client.PostAsync("/v1.0/state/store", new StringContent($$"""[{"key":"k","value":{{value}}}]""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.NoContent, saved.StatusCode);
            await GetAsync(client, 50);
        }
        var before = await ScrapeAsync(runtime, 50, 50);

        // In rounds: in each, the heavy tenant's three requests and the light tenant's one are sent at the same time, so
        // they meet the same contention for the cores. The first request of a burst costs the most (it wakes the
        // server's threads): the light tenant's request takes each place in turn, so each tenant is first as often as
        // its share of the requests.
        for (var round = 0; round < LightRequests; round++)
        {
            var lightPlace = round % (Ratio + 1);
            await Task.WhenAll(Enumerable.Range(0, Ratio + 1).Select(place => GetAsync(place == lightPlace ? light : heavy, 1)).ToList());
        }
        var after = await ScrapeAsync(runtime, 50 + (Ratio * LightRequests), 50 + LightRequests);

        var heavyCpu = after.Heavy - before.Heavy;
        var lightCpu = after.Light - before.Light;
        Assert.True(lightCpu > 0, "the light tenant's requests were measured");
        var ratio = heavyCpu / lightCpu;
        Assert.True(Math.Abs(ratio - Ratio) <= Ratio * 0.2, $"CPU split {heavyCpu:F4}s : {lightCpu:F4}s = {ratio:F2}, expected {Ratio} within 20%");
    }

    private static async Task GetAsync(HttpClient client, int count)
    {
        for (var i = 0; i < count; i++)
        {
            using var response = await client.GetAsync("/v1.0/state/store/k");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsByteArrayAsync();
        }
    }

    /// <summary>Both tenants' CPU seconds, from a scrape that already counts the requests answered so far.</summary>
    private static async Task<(double Heavy, double Light)> ScrapeAsync(TestRuntime runtime, int heavyGets, int lightGets)
    {
        using var scraper = new HttpClient { BaseAddress = runtime.MetricsAddress };
        (double Heavy, double Light) cpu = default;
        await Eventually.TrueAsync(async () =>
        {
            var text = await scraper.GetStringAsync("/metrics");
            if (Value(text, "sharedruntime_requests_total", "cpu-heavy", ("api", "state"), ("code", "200")) != heavyGets ||
                Value(text, "sharedruntime_requests_total", "cpu-light", ("api", "state"), ("code", "200")) != lightGets)
            {
                return false;
            }
            cpu = (Value(text, "sharedruntime_tenant_cpu_seconds_total", "cpu-heavy") ?? 0, Value(text, "sharedruntime_tenant_cpu_seconds_total", "cpu-light") ?? 0);
            return true;
        }, TimeSpan.FromSeconds(10), "the scrape counts every request answered");
        return cpu;
    }

    private static double? Value(string text, string name, string appId, params (string Key, string Value)[] labels)
    {
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith(name + "{", StringComparison.Ordinal))
            {
                continue;
            }
            var close = line.IndexOf('}', StringComparison.Ordinal);
            var labelText = line[(name.Length + 1)..close];
            if (labelText.Contains($"app_id=\"{appId}\"", StringComparison.Ordinal) && labels.All(l => labelText.Contains($"{l.Key}=\"{l.Value}\"", StringComparison.Ordinal)))
            {
                return double.Parse(line[(close + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }
        return null;
    }
}
