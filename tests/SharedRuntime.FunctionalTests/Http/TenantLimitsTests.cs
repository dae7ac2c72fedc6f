using System.Net;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.Components;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>Every tenant limit, and that one tenant hitting its limit takes nothing from another.</summary>
public sealed class TenantLimitsTests
{
    [Fact]
    public async Task OverTheRateIs429WithRetryAfterAndTheNeighbourIsUnaffected()
    {
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("noisy", "noisy-token", "requestsPerSecond: 0.01\nburst: 3") +
            Resources.Tenant("quiet", "quiet-token", "requestsPerSecond: 0.01\nburst: 3"));
        var noisy = runtime.Client("noisy-token");
        var quiet = runtime.Client("quiet-token");

        for (var i = 0; i < 3; i++)
        {
            await StatusAsync(await noisy.GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        }
        var refused = await noisy.GetAsync("/v1.0/metadata");
        await ErrorAsync(refused, HttpStatusCode.TooManyRequests, "ERR_TENANT_RATE_LIMITED");
        Assert.True(int.Parse(refused.Headers.GetValues("Retry-After").Single()) >= 1);
        // Sent again at once, inside the announced wait: held until it passes (push-back), then refused.
        foreach (var again in await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => noisy.GetAsync("/v1.0/metadata"))))
        {
            await ErrorAsync(again, HttpStatusCode.TooManyRequests, "ERR_TENANT_RATE_LIMITED");
        }

        for (var i = 0; i < 3; i++)
        {
            await StatusAsync(await quiet.GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        }
    }

    [Fact]
    public async Task AFullBulkheadRefusesOnlyThatTenant()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var slowApp = await TestApp.StartAsync(async context =>
        {
            arrived.TrySetResult();
            await release.Task;
            context.Response.StatusCode = 200;
            await context.Response.WriteAsync("done");
        });
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("busy", "busy-token", "maxConcurrency: 1\nmaxQueue: 1") +
            Resources.Tenant("other", "other-token", "maxConcurrency: 1\nmaxQueue: 0") +
            Resources.Component("slow", "bindings.http", new Dictionary<string, string> { ["url"] = slowApp.Address.ToString() }, ["busy"]));
        var busy = runtime.Client("busy-token");
        var other = runtime.Client("other-token");

        var inFlight = busy.PostAsync("/v1.0/bindings/slow", Json("""{"operation":"get"}"""));
        await arrived.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var queued = busy.GetAsync("/v1.0/metadata");
        await Eventually.TrueAsync(() => Task.FromResult(runtime.Configuration.Current.Tenants["busy"].Admission.Bulkhead.Queued == 1), TimeSpan.FromSeconds(10));

        var refused = await busy.GetAsync("/v1.0/metadata");
        await ErrorAsync(refused, HttpStatusCode.TooManyRequests, "ERR_TENANT_BULKHEAD_FULL");
        Assert.True(refused.Headers.Contains("Retry-After"));

        await StatusAsync(await other.GetAsync("/v1.0/metadata"), HttpStatusCode.OK);

        release.SetResult();
        await StatusAsync(await inFlight, HttpStatusCode.OK);
        await StatusAsync(await queued, HttpStatusCode.OK);
        await StatusAsync(await busy.GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
    }

    [Fact]
    public async Task BodiesOverTheTenantLimitAre413WhetherDeclaredOrStreamed()
    {
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("small", "small-token", "maxRequestBodyBytes: 100") +
            Resources.Tenant("large", "large-token", "maxRequestBodyBytes: 100000") +
            Resources.Component("store", "state.in-memory"));
        var big = $$"""[{"key":"k","value":"{{new string('x', 1000)}}"}]""";

        await ErrorAsync(await runtime.Client("small-token").PostAsync("/v1.0/state/store", Json(big)), HttpStatusCode.RequestEntityTooLarge, "ERR_TENANT_BODY_TOO_LARGE");

        var streamed = new StreamContent(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(big)));
        streamed.Headers.ContentType = new("application/json");
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1.0/state/store") { Content = streamed };
        request.Headers.TransferEncodingChunked = true;
        await ErrorAsync(await runtime.Client("small-token").SendAsync(request), HttpStatusCode.RequestEntityTooLarge, "ERR_TENANT_BODY_TOO_LARGE");

        await StatusAsync(await runtime.Client("large-token").PostAsync("/v1.0/state/store", Json(big)), HttpStatusCode.NoContent);
    }

    [Theory]
    [InlineData("state.in-memory")]
    [InlineData("state.sqlite")]
    public async Task StateQuotasAre507PerTenantAndCountOnlyThatTenantsKeys(string storeType)
    {
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("capped", "capped-token", "stateMaxKeys: 2\nstateMaxBytes: 1000") +
            Resources.Tenant("free", "free-token", "stateMaxKeys: 2") +
            Resources.Component("store", storeType, storeType == "state.sqlite" ? new Dictionary<string, string> { ["connectionString"] = "quota.db" } : null));
        var capped = runtime.Client("capped-token");
        var free = runtime.Client("free-token");

        await StatusAsync(await capped.PostAsync("/v1.0/state/store", Json("""[{"key":"a","value":1},{"key":"b","value":2}]""")), HttpStatusCode.NoContent);
        await ErrorAsync(await capped.PostAsync("/v1.0/state/store", Json("""[{"key":"c","value":3}]""")), (HttpStatusCode)507, "ERR_TENANT_QUOTA_EXCEEDED");
        await StatusAsync(await capped.PostAsync("/v1.0/state/store", Json("""[{"key":"a","value":10}]""")), HttpStatusCode.NoContent);
        await ErrorAsync(await capped.PostAsync("/v1.0/state/store", Json($$"""[{"key":"a","value":"{{new string('x', 2000)}}"}]""")), (HttpStatusCode)507, "ERR_TENANT_QUOTA_EXCEEDED");
        await ErrorAsync(await capped.PostAsync("/v1.0/state/store/transaction", Json("""{"operations":[{"operation":"upsert","request":{"key":"z","value":1}}]}""")),
            (HttpStatusCode)507, "ERR_TENANT_QUOTA_EXCEEDED");

        // The neighbour's two keys are its own: the capped tenant's usage does not count against it.
        await StatusAsync(await free.PostAsync("/v1.0/state/store", Json("""[{"key":"a","value":1},{"key":"b","value":2}]""")), HttpStatusCode.NoContent);

        await StatusAsync(await capped.DeleteAsync("/v1.0/state/store/b"), HttpStatusCode.NoContent);
        await StatusAsync(await capped.PostAsync("/v1.0/state/store", Json("""[{"key":"c","value":3}]""")), HttpStatusCode.NoContent);

        // A refused transaction changed nothing, so the count is still exact: a and c, and no room for a third key.
        await ErrorAsync(await capped.PostAsync("/v1.0/state/store", Json("""[{"key":"d","value":4}]""")), (HttpStatusCode)507, "ERR_TENANT_QUOTA_EXCEEDED");
        await StatusAsync(await capped.PostAsync("/v1.0/state/store/transaction", Json("""{"operations":[{"operation":"delete","request":{"key":"a"}},{"operation":"upsert","request":{"key":"d","value":4}}]}""")), HttpStatusCode.NoContent);
        await StatusAsync(await capped.GetAsync("/v1.0/state/store/a"), HttpStatusCode.NoContent);
    }

    /// <summary>
    /// A write to one store is allowed the tenant's quota minus what it stores in its other stores. That figure is read
    /// in the background (never on the request path), so it may lag one write behind; after that the other store's
    /// keys count.
    /// </summary>
    [Fact]
    public async Task StateQuotaCountsTheTenantsOtherStoresOnceTheirUsageIsRead()
    {
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("capped", "capped-token", "stateMaxKeys: 3") +
            Resources.Component("one", "state.in-memory") +
            Resources.Component("two", "state.in-memory"));
        var capped = runtime.Client("capped-token");

        await StatusAsync(await capped.PostAsync("/v1.0/state/one", Json("""[{"key":"a","value":1},{"key":"b","value":2}]""")), HttpStatusCode.NoContent);
        await StatusAsync(await capped.PostAsync("/v1.0/state/two", Json("""[{"key":"c","value":3}]""")), HttpStatusCode.NoContent);

        // Three keys in all: once store one's two keys are read, store two has no room left.
        var attempt = 0;
        string key = "";
        await Eventually.TrueAsync(async () =>
        {
            key = $"d{attempt++}";
            using var refused = await capped.PostAsync("/v1.0/state/two", Json($$"""[{"key":"{{key}}","value":4}]"""));
            return (int)refused.StatusCode == 507;
        }, TimeSpan.FromSeconds(10), "store two never counted store one's keys");
        await StatusAsync(await capped.GetAsync($"/v1.0/state/two/{key}"), HttpStatusCode.NoContent);
    }

    /// <summary>
    /// A run of writes to one store reads nothing back from it: its usage is read again only when a write to another
    /// store of the same tenant needs it. (Each save once read its own store's usage back, one more round trip to the
    /// backend per save.) Another tenant's writes never read the first tenant's usage.
    /// </summary>
    [Fact]
    public async Task WritesToOneStoreReadItsUsageOnlyWhenAWriteToAnotherStoreNeedsIt()
    {
        var counting = new CountingStores();
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string>
        {
            ["components.yaml"] = Resources.Component("counted", "state.test-counting") + Resources.Component("other", "state.in-memory"),
            ["tenants.yaml"] = Resources.Tenant("capped", "capped-token", "stateMaxKeys: 1000") + Resources.Tenant("neighbour", "neighbour-token", "stateMaxKeys: 1000"),
        }, services: s => s.AddSingleton<IComponentFactory>(counting));
        var capped = runtime.Client("capped-token");

        // The first write to each store reads the other's usage once.
        await StatusAsync(await capped.PostAsync("/v1.0/state/other", Json("""[{"key":"a","value":1}]""")), HttpStatusCode.NoContent);
        await StatusAsync(await capped.PostAsync("/v1.0/state/counted", Json("""[{"key":"b","value":2}]""")), HttpStatusCode.NoContent);
        await Eventually.TrueAsync(() => Task.FromResult(counting.Reads("capped") == 1), TimeSpan.FromSeconds(10), "store counted's usage was never read");

        for (var i = 0; i < 20; i++)
        {
            await StatusAsync(await capped.PostAsync("/v1.0/state/counted", Json($$"""[{"key":"b{{i}}","value":{{i}}}]""")), HttpStatusCode.NoContent);
        }
        await StatusAsync(await runtime.Client("neighbour-token").PostAsync("/v1.0/state/counted", Json("""[{"key":"n","value":3}]""")), HttpStatusCode.NoContent);
        await StatusAsync(await runtime.Client("neighbour-token").PostAsync("/v1.0/state/other", Json("""[{"key":"n","value":3}]""")), HttpStatusCode.NoContent);
        Assert.Equal(20 + 1, counting.Writes("capped"));
        Assert.Equal(1, counting.Reads("capped"));

        // A write to the other store reads it again, once.
        await StatusAsync(await capped.PostAsync("/v1.0/state/other", Json("""[{"key":"c","value":3}]""")), HttpStatusCode.NoContent);
        await Eventually.TrueAsync(() => Task.FromResult(counting.Reads("capped") == 2), TimeSpan.FromSeconds(10), "store counted's usage was not read again");
        await StatusAsync(await capped.PostAsync("/v1.0/state/other", Json("""[{"key":"d","value":4}]""")), HttpStatusCode.NoContent);
        Assert.Equal(2, counting.Reads("capped"));
    }

    /// <summary>A state store that keeps nothing and counts, per app, the writes it takes and the reads of its usage.</summary>
    private sealed class CountingStores : IComponentFactory, IStateStore
    {
        private readonly ConcurrentDictionary<string, int> _reads = new(StringComparer.Ordinal);
        private readonly ConcurrentDictionary<string, int> _writes = new(StringComparer.Ordinal);

        public IReadOnlyCollection<string> Types { get; } = ["state.test-counting"];
        public IReadOnlyList<string> Capabilities { get; } = [];

        public int Reads(string appId) => _reads.GetValueOrDefault(appId);
        public int Writes(string appId) => _writes.GetValueOrDefault(appId);

        public IComponent Create(ComponentContext context) => this;
        public ValueTask InitAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;
        public ValueTask<StateEntry?> GetAsync(string key, CancellationToken cancellationToken) => ValueTask.FromResult<StateEntry?>(null);
        public ValueTask<string> SetAsync(StateSetRequest request, CancellationToken cancellationToken) => throw new NotSupportedException();
        public ValueTask DeleteAsync(StateDeleteRequest request, CancellationToken cancellationToken) => throw new NotSupportedException();
        public ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, StateAllowance allowance, CancellationToken cancellationToken)
        {
            _writes.AddOrUpdate(allowance.Prefix, 1, static (_, n) => n + 1);
            return ValueTask.CompletedTask;
        }

        public ValueTask<StateUsage> GetUsageAsync(string prefix, CancellationToken cancellationToken)
        {
            _reads.AddOrUpdate(prefix, 1, static (_, n) => n + 1);
            return ValueTask.FromResult(default(StateUsage));
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
