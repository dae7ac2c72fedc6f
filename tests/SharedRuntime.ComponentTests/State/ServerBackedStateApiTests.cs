using System.Net;
using System.Text;
using SharedRuntime.ComponentTests.Servers;
using SharedRuntime.Tests;

namespace SharedRuntime.ComponentTests.State;

/// <summary>
/// The runtime with a server-backed store named in a Component file, used over HTTP by two tenants: the host knows the
/// component type, etag outcomes keep their Dapr status codes, and one tenant never sees the other's keys.
/// </summary>
public abstract class ServerBackedStateApiTests
{
    protected abstract string? Missing { get; }

    protected abstract string Server { get; }

    protected abstract string ComponentYaml();

    [SkippableFact]
    public async Task TenantsSaveReadAndConflictThroughTheRuntime()
    {
        TestServers.Require(Server, Missing);
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("orders", "orders-token") + Resources.Tenant("billing", "billing-token") + ComponentYaml());
        var orders = runtime.Client("orders-token");
        var billing = runtime.Client("billing-token");

        await ExpectAsync(await orders.PostAsync("/v1.0/state/store", Json("""[{"key":"k","value":{"total":42}}]""")), HttpStatusCode.NoContent);
        var read = await orders.GetAsync("/v1.0/state/store/k");
        await ExpectAsync(read, HttpStatusCode.OK);
        Assert.Equal("""{"total":42}""", await read.Content.ReadAsStringAsync());
        var etag = read.Headers.GetValues("ETag").Single();

        await ExpectAsync(await billing.GetAsync("/v1.0/state/store/k"), HttpStatusCode.NoContent);
        await ExpectAsync(await orders.PostAsync("/v1.0/state/store", Json($$"""[{"key":"k","value":1,"etag":"{{etag}}"}]""")), HttpStatusCode.NoContent);
        await ExpectAsync(await orders.PostAsync("/v1.0/state/store", Json($$"""[{"key":"k","value":2,"etag":"{{etag}}"}]""")), HttpStatusCode.Conflict);
        await ExpectAsync(await orders.PostAsync("/v1.0/state/store", Json("""[{"key":"k","value":2,"etag":"x"}]""")), HttpStatusCode.BadRequest);
        Assert.Equal("1", await orders.GetStringAsync("/v1.0/state/store/k"));
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static async Task ExpectAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        if (response.StatusCode != status)
        {
            Assert.Fail($"expected {(int)status}, got {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }
    }
}

public sealed class RedisStateApiTests(RedisServer server) : ServerBackedStateApiTests, IClassFixture<RedisServer>
{
    protected override string? Missing => server.Missing;

    protected override string Server => "redis-server";

    protected override string ComponentYaml() => Resources.Component("store", "state.redis", new Dictionary<string, string> { ["redisHost"] = server.Host });
}

public sealed class PostgreSqlStateApiTests(PostgreSqlServer server) : ServerBackedStateApiTests, IClassFixture<PostgreSqlServer>
{
    protected override string? Missing => server.Missing;

    protected override string Server => "PostgreSQL";

    protected override string ComponentYaml() => Resources.Component("store", "state.postgresql", new Dictionary<string, string> { ["connectionString"] = server.ConnectionString });
}
