using System.Net;
using System.Text.Json;
using SharedRuntime.ComponentTests.Servers;
using SharedRuntime.Tests;

namespace SharedRuntime.ComponentTests.State;

/// <summary>Two apps share one slow Redis store: the app that floods it is refused with 429, the other still gets in line.</summary>
public sealed class SharedBackendFairnessTests(RedisServer server) : IClassFixture<RedisServer>
{
    [SkippableFact]
    public async Task AnAppBeyondItsLineAtASharedStoreGets429WhileAnotherAppIsServed()
    {
        TestServers.Require("redis-server", server.Missing);
        await server.FlushAsync();
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("a", "a-token") + Resources.Tenant("b", "b-token")
            + Resources.Component("store", "state.redis", new Dictionary<string, string>
            {
                ["redisHost"] = server.Host,
                ["readTimeout"] = "10s",
                ["maxConcurrentCalls"] = "1",
                ["maxQueuedCallsPerApp"] = "1",
            }));
        var a = runtime.Client("a-token");
        var b = runtime.Client("b-token");
        Assert.Equal(HttpStatusCode.NoContent, (await a.GetAsync("/v1.0/state/store/k").WaitAsync(Within.Limit)).StatusCode);

        // Redis holds every command for 5s (redis-cli: the pause must not ride on the store's own connection): one call
        // of the store runs, one per app may wait, the rest are refused.
        await TestServers.RunAsync(TestServers.FindOnPath("redis-cli") ?? "redis-cli", "-p", server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "CLIENT", "PAUSE", "5000", "ALL");
        var flood = Enumerable.Range(0, 10).Select(_ => a.GetAsync("/v1.0/state/store/k").WaitAsync(Within.Limit)).ToList();
        // Answered while Redis still holds the calls that got in: those are the refusals.
        var whilePaused = Task.Delay(TimeSpan.FromSeconds(4));
        await Task.WhenAny(Task.WhenAll(flood), whilePaused);
        var refused = flood.Where(c => c.IsCompletedSuccessfully && c.Result.StatusCode == HttpStatusCode.TooManyRequests).Select(c => c.Result).ToList();
        var other = await b.GetAsync("/v1.0/state/store/k").WaitAsync(Within.Limit);
        var served = await Task.WhenAll(flood);

        var statuses = string.Join(", ", await Task.WhenAll(served.Select(async r => $"{(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}")));
        Assert.True(refused.Count >= 8, $"only {refused.Count} of 10 calls beyond the line were refused at once: {statuses}");
        foreach (var response in refused)
        {
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("ERR_TENANT_BACKEND_BUSY", body.RootElement.GetProperty("errorCode").GetString());
            Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
        }
        Assert.Equal(HttpStatusCode.NoContent, other.StatusCode);
        Assert.Equal(10 - refused.Count, served.Count(r => r.StatusCode == HttpStatusCode.NoContent));
    }
}
