using System.Net;
using System.Text;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>
/// Each tenant's requests in flight hold at most its memory budget, and all tenants together at most the node's
/// ceiling: one tenant using its whole budget refuses only its own requests; the ceiling refuses everyone's, with its
/// own message.
/// </summary>
public sealed class MemoryBudgetTests
{
    private const int BodyBytes = 1024 * 1024;
    private const int HeldBytes = 1_040_000;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_tenant_holding_its_whole_budget_is_refused_while_another_is_served_until_the_node_ceiling()
    {
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("greedy", "greedy-token", "maxRequestBodyBytes: 1048576\nmaxMemoryBytes: 2097152") +
            Resources.Tenant("other", "other-token", "maxRequestBodyBytes: 1048576\nmaxMemoryBytes: 2097152") +
            Resources.Component("store", "state.in-memory"),
            o => o with { MaxMemoryBytes = 3 * 1024 * 1024 });
        var greedy = runtime.Client("greedy-token");
        var other = runtime.Client("other-token");
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // Two saves whose bodies stop short of their end: the runtime holds what arrived, about 2 MB of greedy's 2 MiB.
        var held = new List<Task<HttpResponseMessage>>
        {
            greedy.PostAsync("/v1.0/state/store", new HeldContent(gate.Task)),
            greedy.PostAsync("/v1.0/state/store", new HeldContent(gate.Task)),
        };
        await Eventually.TrueAsync(() => Task.FromResult(InUse(runtime, "greedy") >= 2 * HeldBytes), Timeout, "greedy holds two bodies");

        var refused = await ErrorAsync(await greedy.PostAsync("/v1.0/state/store", Json(Save("k", 100_000))), HttpStatusCode.TooManyRequests, "ERR_TENANT_MEMORY_BUDGET");
        Assert.Contains("app greedy holds", refused, StringComparison.Ordinal);

        await StatusAsync(await other.PostAsync("/v1.0/state/store", Json(Save("k", 100_000))), HttpStatusCode.NoContent);
        await StatusAsync(await other.GetAsync("/v1.0/state/store/k"), HttpStatusCode.OK);

        // Other holds one body too: the node's 3 MiB are used up, and other's next body is refused by the ceiling.
        held.Add(other.PostAsync("/v1.0/state/store", new HeldContent(gate.Task)));
        await Eventually.TrueAsync(() => Task.FromResult(InUse(runtime, "other") >= HeldBytes), Timeout, "other holds a body");
        var ceiling = await ErrorAsync(await other.PostAsync("/v1.0/state/store", Json(Save("k", 100_000))), HttpStatusCode.TooManyRequests, "ERR_TENANT_MEMORY_BUDGET");
        Assert.Contains("memory ceiling shared by all apps", ceiling, StringComparison.Ordinal);

        using (var scraper = new HttpClient { BaseAddress = runtime.MetricsAddress })
        {
            await Eventually.TrueAsync(async () =>
            {
                var lines = (await scraper.GetStringAsync("/metrics")).Split('\n').Where(l => l.StartsWith("sharedruntime_rejections_total{", StringComparison.Ordinal)).ToList();
                return lines.Any(l => l.Contains("app_id=\"greedy\"", StringComparison.Ordinal) && l.Contains("reason=\"memory_budget\"", StringComparison.Ordinal)) &&
                       lines.Any(l => l.Contains("app_id=\"other\"", StringComparison.Ordinal) && l.Contains("reason=\"node_memory\"", StringComparison.Ordinal));
            }, Timeout, "both refusals counted, each with its reason");
        }

        gate.SetResult();
        foreach (var request in held)
        {
            using var response = await request.WaitAsync(Timeout);
            Assert.True(response.StatusCode is HttpStatusCode.NoContent or HttpStatusCode.TooManyRequests, $"held save: {(int)response.StatusCode}");
        }
        await Eventually.TrueAsync(() => Task.FromResult(runtime.Configuration.NodeMemory.InUse == 0), Timeout, "every request gave its memory back");
        await StatusAsync(await greedy.PostAsync("/v1.0/state/store", Json(Save("k", 100_000))), HttpStatusCode.NoContent);
        await StatusAsync(await other.PostAsync("/v1.0/state/store", Json(Save("k", 100_000))), HttpStatusCode.NoContent);
    }

    [Fact]
    public async Task A_bulk_get_answers_each_distinct_key_once_and_refuses_an_answer_larger_than_the_budget()
    {
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("app", "app-token", "maxMemoryBytes: 4194304") +
            Resources.Component("store", "state.in-memory"));
        var app = runtime.Client("app-token");
        for (var i = 0; i < 3; i++)
        {
            await StatusAsync(await app.PostAsync("/v1.0/state/store", Json(Save($"k{i}", 1_000_000))), HttpStatusCode.NoContent);
        }

        using var twice = await app.PostAsync("/v1.0/state/store/bulk", Json("""{"keys":["k0","missing","k0","k0","missing"]}"""));
        await StatusAsync(twice, HttpStatusCode.OK);
        using var items = System.Text.Json.JsonDocument.Parse(await twice.Content.ReadAsStringAsync());
        Assert.Equal(["k0", "missing"], items.RootElement.EnumerateArray().Select(i => i.GetProperty("key").GetString()));

        // Three values of 1 MB, and the answer that embeds them, are more than 4 MiB: refused whole, before any of it is sent.
        var refused = await ErrorAsync(await app.PostAsync("/v1.0/state/store/bulk", Json("""{"keys":["k0","k1","k2"]}""")),
            HttpStatusCode.RequestEntityTooLarge, "ERR_TENANT_MEMORY_BUDGET");
        Assert.Contains("app app may hold", refused, StringComparison.Ordinal);
        await Eventually.TrueAsync(() => Task.FromResult(runtime.Configuration.NodeMemory.InUse == 0), Timeout, "the refused request gave its memory back");

        var tooMany = string.Join(",", Enumerable.Range(0, 1001).Select(i => $"\"k{i}\""));
        await ErrorAsync(await app.PostAsync("/v1.0/state/store/bulk", Json($$"""{"keys":[{{tooMany}}]}""")), HttpStatusCode.BadRequest, "ERR_TENANT_TOO_MANY_KEYS");
    }

    private static long InUse(TestRuntime runtime, string appId) => runtime.Configuration.Current.Tenants[appId].Memory.InUse;

    private static string Save(string key, int valueBytes) => $$"""[{"key":"{{key}}","value":"{{new string('v', valueBytes)}}"}]""";

    /// <summary>A save body of <see cref="BodyBytes"/> bytes that sends all but its end, then waits for the gate.</summary>
    private sealed class HeldContent : HttpContent
    {
        private readonly Task _gate;
        private readonly byte[] _body = Encoding.UTF8.GetBytes(
            $$"""[{"key":"held","value":"{{new string('h', BodyBytes - 27)}}"}]""");

        public HeldContent(Task gate)
        {
            _gate = gate;
            Assert.Equal(BodyBytes, _body.Length);
            Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(_body.AsMemory(0, HeldBytes));
            await stream.FlushAsync();
            await _gate;
            await stream.WriteAsync(_body.AsMemory(HeldBytes));
        }

        protected override bool TryComputeLength(out long length)
        {
            length = _body.Length;
            return true;
        }
    }
}
