using System.Net;

namespace SharedRuntime.FunctionalTests.Http;

public sealed class MetricsTests
{
    // Meters are process-wide and other tests run runtimes in this process too: the app-ids here are used nowhere else.
    [Fact]
    public async Task PerTenantSeriesAreExportedInPrometheusFormat()
    {
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("metered-orders", "orders-token", "requestsPerSecond: 0.01\nburst: 2") +
            Resources.Tenant("metered-billing", "billing-token") +
            Resources.Component("store", "state.in-memory"));
        var orders = runtime.Client("orders-token");
        for (var i = 0; i < 4; i++)
        {
            await orders.GetAsync("/v1.0/state/store/k");
        }
        await runtime.Client("billing-token").GetAsync("/v1.0/metadata");

        using var scraper = new HttpClient { BaseAddress = runtime.MetricsAddress };
        string text = "";
        await Eventually.TrueAsync(async () =>
        {
            text = await scraper.GetStringAsync("/metrics");
            return text.Contains("sharedruntime_rejections_total") && text.Contains("app_id=\"metered-billing\"");
        }, TimeSpan.FromSeconds(10));

        Assert.Equal(2, Value(text, "sharedruntime_requests_total", ("app_id", "metered-orders"), ("api", "state"), ("code", "204")));
        Assert.Equal(2, Value(text, "sharedruntime_requests_total", ("app_id", "metered-orders"), ("api", "state"), ("code", "429")));
        Assert.Equal(1, Value(text, "sharedruntime_requests_total", ("app_id", "metered-billing"), ("api", "metadata"), ("code", "200")));
        Assert.Equal(2, Value(text, "sharedruntime_rejections_total", ("app_id", "metered-orders"), ("reason", "rate_limited")));
        Assert.Null(Value(text, "sharedruntime_rejections_total", ("app_id", "metered-billing"), ("reason", "rate_limited")));
        Assert.Contains("sharedruntime_request_duration_seconds_bucket", text);
        Assert.Contains("sharedruntime_inflight_requests", text);
        Assert.DoesNotContain("orders-token", text);
    }

    /// <summary>The value of the series <paramref name="name"/> whose labels include all of <paramref name="labels"/>.</summary>
    private static double? Value(string text, string name, params (string Key, string Value)[] labels)
    {
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith(name + "{", StringComparison.Ordinal))
            {
                continue;
            }
            var close = line.IndexOf('}');
            var labelText = line[(name.Length + 1)..close];
            if (labels.All(l => labelText.Contains($"{l.Key}=\"{l.Value}\"", StringComparison.Ordinal)))
            {
                return double.Parse(line[(close + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        return null;
    }
}
