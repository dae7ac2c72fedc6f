using System.Net;
using System.Text.Json;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>The state API against both embedded stores, over real HTTP.</summary>
public abstract class StateApiTests : IAsyncLifetime
{
    protected TestRuntime Runtime { get; private set; } = null!;
    protected HttpClient Orders { get; private set; } = null!;
    protected HttpClient Billing { get; private set; } = null!;

    protected abstract string StoreYaml { get; }

    public async Task InitializeAsync()
    {
        Runtime = await TestRuntime.StartAsync(
            Resources.Tenant("orders", "orders-token") +
            Resources.Tenant("billing", "billing-token") +
            StoreYaml);
        Orders = Runtime.Client("orders-token");
        Billing = Runtime.Client("billing-token");
    }

    public async Task DisposeAsync() => await Runtime.DisposeAsync();

    private static Task<HttpResponseMessage> Save(HttpClient client, string json) => client.PostAsync("/v1.0/state/store", Json(json));

    [Fact]
    public async Task SaveThenGetReturnsTheValueAndAnETag()
    {
        await StatusAsync(await Save(Orders, """[{"key":"order-1","value":{"total":42}}]"""), HttpStatusCode.NoContent);
        var response = await Orders.GetAsync("/v1.0/state/store/order-1");
        await StatusAsync(response, HttpStatusCode.OK);
        Assert.Equal("""{"total":42}""", await response.Content.ReadAsStringAsync());
        Assert.False(string.IsNullOrEmpty(response.Headers.ETag?.Tag ?? response.Headers.GetValues("ETag").Single()));
    }

    [Fact]
    public async Task AStateGetIsAnsweredAlikeUnderEveryPathTheRouterAccepts()
    {
        await StatusAsync(await Save(Orders, """[{"key":"order-1","value":{"total":42}}]"""), HttpStatusCode.NoContent);
        foreach (var path in new[] { "/v1.0/state/store/order-1", "/v1.0-alpha1/state/store/order-1", "/V1.0/STATE/store/order-1", "/v1.0/state/store/order-1/" })
        {
            var response = await Orders.GetAsync(path);
            await StatusAsync(response, HttpStatusCode.OK);
            Assert.Equal("""{"total":42}""", await response.Content.ReadAsStringAsync());
        }
        // Another tenant's GET of the same key finds nothing; an unknown store is the caller's 400; no token is 401.
        await StatusAsync(await Billing.GetAsync("/v1.0/state/store/order-1"), HttpStatusCode.NoContent);
        await ErrorAsync(await Orders.GetAsync("/v1.0/state/nowhere/order-1"), HttpStatusCode.BadRequest, "ERR_STATE_STORE_NOT_FOUND");
        await ErrorAsync(await Runtime.Client(null).GetAsync("/v1.0/state/store/order-1"), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
        Assert.Equal(HttpStatusCode.NotFound, (await Orders.GetAsync("/v1.0/state/store/order-1/more")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Orders.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/v1.0/state/store/order-1"))).StatusCode);
    }

    [Fact]
    public async Task MissingKeyIs204()
    {
        await StatusAsync(await Orders.GetAsync("/v1.0/state/store/nothing"), HttpStatusCode.NoContent);
    }

    [Fact]
    public async Task ETagsGuardWritesAndDeletes()
    {
        await Save(Orders, """[{"key":"k","value":"v1"}]""");
        var etag = (await Orders.GetAsync("/v1.0/state/store/k")).Headers.GetValues("ETag").Single();

        await StatusAsync(await Save(Orders, $$"""[{"key":"k","value":"v2","etag":"{{etag}}"}]"""), HttpStatusCode.NoContent);
        await ErrorAsync(await Save(Orders, $$"""[{"key":"k","value":"v3","etag":"{{etag}}"}]"""), HttpStatusCode.Conflict, "ERR_STATE_SAVE");
        await ErrorAsync(await Save(Orders, """[{"key":"k","value":"v3","etag":"not-a-number"}]"""), HttpStatusCode.BadRequest, "ERR_STATE_SAVE");
        Assert.Equal("\"v2\"", await Orders.GetStringAsync("/v1.0/state/store/k"));

        var delete = new HttpRequestMessage(HttpMethod.Delete, "/v1.0/state/store/k");
        delete.Headers.TryAddWithoutValidation("If-Match", etag);
        await ErrorAsync(await Orders.SendAsync(delete), HttpStatusCode.Conflict, "ERR_STATE_DELETE");
        var current = (await Orders.GetAsync("/v1.0/state/store/k")).Headers.GetValues("ETag").Single();
        delete = new HttpRequestMessage(HttpMethod.Delete, "/v1.0/state/store/k");
        delete.Headers.TryAddWithoutValidation("If-Match", current);
        await StatusAsync(await Orders.SendAsync(delete), HttpStatusCode.NoContent);
        await StatusAsync(await Orders.GetAsync("/v1.0/state/store/k"), HttpStatusCode.NoContent);
    }

    [Fact]
    public async Task FirstWriteRefusesToOverwriteAnExistingKey()
    {
        await StatusAsync(await Save(Orders, """[{"key":"fw","value":1,"options":{"concurrency":"first-write"}}]"""), HttpStatusCode.NoContent);
        await ErrorAsync(await Save(Orders, """[{"key":"fw","value":2,"options":{"concurrency":"first-write"}}]"""), HttpStatusCode.Conflict, "ERR_STATE_SAVE");
        Assert.Equal("1", await Orders.GetStringAsync("/v1.0/state/store/fw"));
    }

    [Fact]
    public async Task AnUnknownConcurrencyIsRefusedOnASaveAndOnADeleteAlike()
    {
        await StatusAsync(await Save(Orders, """[{"key":"cc","value":1}]"""), HttpStatusCode.NoContent);
        await ErrorAsync(await Save(Orders, """[{"key":"cc","value":2,"options":{"concurrency":"sometimes"}}]"""), HttpStatusCode.BadRequest, "ERR_MALFORMED_REQUEST");
        await ErrorAsync(await Orders.DeleteAsync("/v1.0/state/store/cc?concurrency=sometimes"), HttpStatusCode.BadRequest, "ERR_MALFORMED_REQUEST");
        // Neither refused request touched the key.
        var kept = await Orders.GetAsync("/v1.0/state/store/cc");
        Assert.Equal("1", await kept.Content.ReadAsStringAsync());
        await StatusAsync(await Orders.DeleteAsync("/v1.0/state/store/cc?concurrency=last-write"), HttpStatusCode.NoContent);
    }

    [Fact]
    public async Task BulkGetReturnsEveryKeyWithDataAndETags()
    {
        await Save(Orders, """[{"key":"a","value":{"n":1}},{"key":"b","value":"text"}]""");
        var response = await Orders.PostAsync("/v1.0/state/store/bulk", Json("""{"keys":["a","b","missing"],"parallelism":2}"""));
        await StatusAsync(response, HttpStatusCode.OK);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var items = json.RootElement.EnumerateArray().ToDictionary(e => e.GetProperty("key").GetString()!);
        Assert.Equal(1, items["a"].GetProperty("data").GetProperty("n").GetInt32());
        Assert.Equal("text", items["b"].GetProperty("data").GetString());
        Assert.True(items["a"].TryGetProperty("etag", out _));
        Assert.False(items["missing"].TryGetProperty("data", out _));
    }

    [Fact]
    public async Task TransactionAppliesAllOrNothing()
    {
        await Save(Orders, """[{"key":"t1","value":"old"}]""");
        await StatusAsync(await Orders.PostAsync("/v1.0/state/store/transaction", Json("""
            {"operations":[{"operation":"upsert","request":{"key":"t2","value":"new"}},{"operation":"delete","request":{"key":"t1"}}]}
            """)), HttpStatusCode.NoContent);
        await StatusAsync(await Orders.GetAsync("/v1.0/state/store/t1"), HttpStatusCode.NoContent);
        Assert.Equal("\"new\"", await Orders.GetStringAsync("/v1.0/state/store/t2"));

        var failing = await Orders.PostAsync("/v1.0/state/store/transaction", Json("""
            {"operations":[{"operation":"upsert","request":{"key":"t3","value":"x"}},{"operation":"upsert","request":{"key":"t2","value":"y","etag":"999999"}}]}
            """));
        await ErrorAsync(failing, HttpStatusCode.Conflict, "ERR_STATE_TRANSACTION");
        await StatusAsync(await Orders.GetAsync("/v1.0/state/store/t3"), HttpStatusCode.NoContent);
        Assert.Equal("\"new\"", await Orders.GetStringAsync("/v1.0/state/store/t2"));

        await ErrorAsync(await Orders.PostAsync("/v1.0/state/store/transaction", Json("""{"operations":[{"operation":"merge","request":{"key":"x"}}]}""")),
            HttpStatusCode.BadRequest, "ERR_NOT_SUPPORTED_STATE_OPERATION");
    }

    [Fact]
    public async Task TtlMakesAKeyExpire()
    {
        await StatusAsync(await Save(Orders, """[{"key":"ttl","value":"v","metadata":{"ttlInSeconds":"1"}}]"""), HttpStatusCode.NoContent);
        var response = await Orders.GetAsync("/v1.0/state/store/ttl");
        Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.NoContent);
        await Eventually.TrueAsync(async () => (await Orders.GetAsync("/v1.0/state/store/ttl")).StatusCode == HttpStatusCode.NoContent, TimeSpan.FromSeconds(10));
        await ErrorAsync(await Save(Orders, """[{"key":"ttl","value":"v","metadata":{"ttlInSeconds":"soon"}}]"""), HttpStatusCode.BadRequest, "ERR_STATE_SAVE");
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("""{"key":"k"}""")]
    [InlineData("""[{"value":1}]""")]
    public async Task MalformedSavesAre400(string body)
    {
        await ErrorAsync(await Save(Orders, body), HttpStatusCode.BadRequest, "ERR_MALFORMED_REQUEST");
    }

    [Fact]
    public async Task KeysCannotContainTheTenantSeparator()
    {
        await ErrorAsync(await Save(Orders, """[{"key":"billing||k","value":1}]"""), HttpStatusCode.BadRequest, "ERR_MALFORMED_REQUEST");
        await ErrorAsync(await Orders.GetAsync("/v1.0/state/store/billing%7C%7Ck"), HttpStatusCode.BadRequest, "ERR_MALFORMED_REQUEST");
    }

    [Fact]
    public async Task UnknownStoreIs400()
    {
        await ErrorAsync(await Orders.GetAsync("/v1.0/state/nope/k"), HttpStatusCode.BadRequest, "ERR_STATE_STORE_NOT_FOUND");
    }

    [Fact]
    public async Task AnotherTenantCannotReadOverwriteDeleteOrListTheKey()
    {
        await Save(Orders, """[{"key":"shared-name","value":"orders-secret"}]""");

        await StatusAsync(await Billing.GetAsync("/v1.0/state/store/shared-name"), HttpStatusCode.NoContent);
        var bulk = await Billing.PostAsync("/v1.0/state/store/bulk", Json("""{"keys":["shared-name"]}"""));
        Assert.DoesNotContain("orders-secret", await bulk.Content.ReadAsStringAsync());

        await StatusAsync(await Save(Billing, """[{"key":"shared-name","value":"billing-value"}]"""), HttpStatusCode.NoContent);
        await StatusAsync(await Billing.DeleteAsync("/v1.0/state/store/shared-name"), HttpStatusCode.NoContent);
        await Billing.PostAsync("/v1.0/state/store/transaction", Json("""{"operations":[{"operation":"delete","request":{"key":"shared-name"}}]}"""));

        Assert.Equal("\"orders-secret\"", await Orders.GetStringAsync("/v1.0/state/store/shared-name"));
    }
}

public sealed class InMemoryStateApiTests : StateApiTests
{
    protected override string StoreYaml => Resources.Component("store", "state.in-memory");
}

public sealed class SqliteStateApiTests : StateApiTests
{
    protected override string StoreYaml => Resources.Component("store", "state.sqlite", new Dictionary<string, string> { ["connectionString"] = "state.db" });
}
