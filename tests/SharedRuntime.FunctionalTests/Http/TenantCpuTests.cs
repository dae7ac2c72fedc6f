using System.Diagnostics.Metrics;
using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>
/// <c>sharedruntime_tenant_cpu_seconds_total</c> is measured from the threads' CPU clocks while they run each tenant's
/// requests: two tenants doing the same requests at the same time, one three times as many, are charged CPU in about
/// that proportion.
/// </summary>
// Alone: another test's runtime stopping ends its meter, and the exporter of every runtime in the process then drops
// the series of the same name, this one's included.
[Collection(SharedRuntime.FunctionalTests.Lifecycle.ProcessTestsCollection.Name)]
public sealed class TenantCpuTests
{
    private const int LightRequests = 600;
    private const int Ratio = 3;

    [Fact]
    public async Task TwoTenantsAreChargedCpuInProportionToTheirWork()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // thread CPU time is read on Linux only
        }
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("cpu-heavy", "heavy-token") + Resources.Tenant("cpu-light", "light-token") + Resources.Component("store", "state.in-memory"),
            options => options with { TenantCpuMetrics = true });
        using var charged = new ChargedCpu(runtime.App.Services.GetRequiredService<IMeterFactory>());
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
        var before = await charged.WaitForAsync(51, 51);

        // In rounds: in each, the heavy tenant's three requests and the light tenant's one are sent at the same time, so
        // they meet the same contention for the cores. The first request of a burst costs the most (it wakes the
        // server's threads): the light tenant's request takes each place in turn, so each tenant is first as often as
        // its share of the requests.
        for (var round = 0; round < LightRequests; round++)
        {
            var lightPlace = round % (Ratio + 1);
            await Task.WhenAll(Enumerable.Range(0, Ratio + 1).Select(place => GetAsync(place == lightPlace ? light : heavy, 1)).ToList());
        }
        var after = await charged.WaitForAsync(51 + (Ratio * LightRequests), 51 + LightRequests);

        var heavyCpu = after.Heavy - before.Heavy;
        var lightCpu = after.Light - before.Light;
        Assert.True(lightCpu > 0, "the light tenant's requests were measured");
        // A request's CPU varies with what else the machine runs (a CI machine's other jobs move it by half), so the
        // split is held to within a factor of two of the work's: charging both tenants alike (1) or all to one fails.
        var ratio = heavyCpu / lightCpu;
        Assert.True(ratio >= Ratio / 2.0 && ratio <= Ratio * 2.0, $"CPU split {heavyCpu:F4}s : {lightCpu:F4}s = {ratio:F2}, expected {Ratio} within a factor of 2");

        // Exported for Prometheus under its documented name, beside the saturation gauge.
        using var scraper = new HttpClient { BaseAddress = runtime.MetricsAddress };
        var text = await scraper.GetStringAsync("/metrics");
        Assert.Contains(text.Split('\n'), l => l.StartsWith("sharedruntime_tenant_cpu_seconds_total{", StringComparison.Ordinal) && l.Contains("app_id=\"cpu-heavy\"", StringComparison.Ordinal));
        Assert.Contains(text.Split('\n'), l => l.StartsWith("sharedruntime_saturation{", StringComparison.Ordinal) || l.StartsWith("sharedruntime_saturation ", StringComparison.Ordinal));
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

    /// <summary>What the runtime's CPU counter records per tenant: how many requests it measured and their seconds.</summary>
    private sealed class ChargedCpu : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly Lock _gate = new();
        private readonly Dictionary<string, (int Requests, double Seconds)> _byTenant = new(StringComparer.Ordinal);

        public ChargedCpu(IMeterFactory runtimeMeters)
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Name == "sharedruntime.tenant.cpu" && instrument.Meter.Scope == runtimeMeters)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<double>((_, seconds, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag is { Key: "app_id", Value: string appId })
                    {
                        lock (_gate)
                        {
                            var (requests, total) = _byTenant.GetValueOrDefault(appId);
                            _byTenant[appId] = (requests + 1, total + seconds);
                        }
                    }
                }
            });
            _listener.Start();
        }

        /// <summary>Both tenants' CPU seconds once the counter has measured this many of their requests.</summary>
        public async Task<(double Heavy, double Light)> WaitForAsync(int heavyRequests, int lightRequests)
        {
            (double Heavy, double Light) seconds = default;
            await Eventually.TrueAsync(() =>
            {
                lock (_gate)
                {
                    var heavy = _byTenant.GetValueOrDefault("cpu-heavy");
                    var light = _byTenant.GetValueOrDefault("cpu-light");
                    seconds = (heavy.Seconds, light.Seconds);
                    return Task.FromResult(heavy.Requests == heavyRequests && light.Requests == lightRequests);
                }
            }, TimeSpan.FromSeconds(10), "every request measured");
            return seconds;
        }

        public void Dispose() => _listener.Dispose();
    }
}
