using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using SharedRuntime.ComponentTests.Servers;
using SharedRuntime.Tests;

namespace SharedRuntime.ComponentTests.State;

/// <summary>
/// One tenant's backend goes down while another tenant keeps working: the runtime answers the first tenant's calls
/// quickly with Dapr's error codes (its breaker opens), never disturbs the second, and serves the first again by
/// itself once the server is back.
/// </summary>
public sealed class BackendOutageTests(RedisServer server) : IClassFixture<RedisServer>
{
    private static readonly TimeSpan FailFast = TimeSpan.FromSeconds(2);

    [SkippableFact]
    public async Task RedisOutageFailsOnlyItsTenantFastAndHealsAfterRestart()
    {
        TestServers.Require("redis-server", server.Missing);
        await server.FlushAsync();
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("a", "a-token") + Resources.Tenant("b", "b-token")
            + Resources.Component("store-a", "state.redis", new Dictionary<string, string> { ["redisHost"] = server.Host }, ["a"])
            + Resources.Component("store-b", "state.in-memory", scopes: ["b"]));
        var a = runtime.Client("a-token");
        var b = runtime.Client("b-token");
        Assert.Equal(HttpStatusCode.NoContent, (await Save(a, "store-a")).StatusCode);

        using var stopB = new CancellationTokenSource();
        var bTraffic = Task.Run(() => KeepCallingAsync(b, stopB.Token));

        // Redis is down for ten seconds under load; every call of tenant a fails fast, tenant b sees nothing of it.
        await server.StopAsync();
        var lastMessage = "";
        var outage = Stopwatch.StartNew();
        for (var i = 0; outage.Elapsed < TimeSpan.FromSeconds(10); i++)
        {
            var elapsed = Stopwatch.StartNew();
            var response = await a.GetAsync("/v1.0/state/store-a/k").WaitAsync(Within.Limit);
            Assert.True(elapsed.Elapsed < FailFast, $"call {i} to the stopped backend took {elapsed.Elapsed}");
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("ERR_STATE_GET", body.RootElement.GetProperty("errorCode").GetString());
            lastMessage = body.RootElement.GetProperty("message").GetString()!;
            await Task.Delay(10); // paced under the tenant's own rate limit
        }
        Assert.Contains("unavailable", lastMessage, StringComparison.Ordinal);

        await server.StartAsync();
        var restarted = Stopwatch.StartNew();
        await Eventually.TrueAsync(async () => (await Save(a, "store-a")).StatusCode == HttpStatusCode.NoContent, TimeSpan.FromSeconds(5),
            "tenant a's store did not work again within 5s of redis restarting");
        Assert.True(restarted.Elapsed < TimeSpan.FromSeconds(5));

        await stopB.CancelAsync();
        var (calls, failures) = await bTraffic.WaitAsync(Within.Limit);
        Assert.True(calls > 0, "tenant b made no calls during the outage");
        Assert.Equal([], failures);
    }

    private static Task<HttpResponseMessage> Save(HttpClient client, string store) =>
        client.PostAsync($"/v1.0/state/{store}", new StringContent("""[{"key":"k","value":1}]""", Encoding.UTF8, "application/json")).WaitAsync(Within.Limit);

    /// <summary>Saves and reads in a loop until stopped; answers how many calls ran and the ones that did not succeed.</summary>
    private static async Task<(int Calls, List<string> Failures)> KeepCallingAsync(HttpClient client, CancellationToken stop)
    {
        var calls = 0;
        var failures = new List<string>();
        while (!stop.IsCancellationRequested)
        {
            var saved = await Save(client, "store-b");
            var read = await client.GetAsync("/v1.0/state/store-b/k").WaitAsync(Within.Limit);
            calls += 2;
            if (saved.StatusCode != HttpStatusCode.NoContent || read.StatusCode != HttpStatusCode.OK)
            {
                failures.Add($"{(int)saved.StatusCode}/{(int)read.StatusCode}: {await saved.Content.ReadAsStringAsync()} {await read.Content.ReadAsStringAsync()}");
            }
            // Paced well under the tenant's rate limit (1000/s), which would otherwise answer 429.
            await Task.WhenAny(Task.Delay(10, stop));
        }
        return (calls, failures);
    }
}
