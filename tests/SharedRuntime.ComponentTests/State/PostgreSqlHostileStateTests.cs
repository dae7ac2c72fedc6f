using System.Net;
using System.Text;
using System.Text.Json;
using Npgsql;
using SharedRuntime.ComponentTests.Servers;
using SharedRuntime.Tests;
using Xunit.Abstractions;

namespace SharedRuntime.ComponentTests.State;

/// <summary>
/// Attacks on a PostgreSQL store that two tenants share, through the runtime as its own process: data PostgreSQL
/// refuses is the attacker's 400 and never opens the store's breaker for the bystander, and rows written with a short
/// TTL keep counting toward the attacker's quota until they are deleted.
/// </summary>
public sealed class PostgreSqlHostileStateTests(PostgreSqlServer server, ITestOutputHelper output) : IClassFixture<PostgreSqlServer>
{
    private static int s_tables;

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private async Task<(HostileRuntime Runtime, string Table)> StartAsync(string? attackerLimits = null)
    {
        TestServers.Require("PostgreSQL", server.Missing);
        var table = $"hostile_{Interlocked.Increment(ref s_tables)}";
        var runtime = await HostileRuntime.StartAsync(
            new Dictionary<string, string>
            {
                ["statestore.yaml"] = Resources.Component("statestore", "state.postgresql", new Dictionary<string, string>
                {
                    ["connectionString"] = server.ConnectionString,
                    ["tableName"] = table,
                }),
            },
            attackerTenant: attackerLimits is null ? null : Resources.Tenant("attacker", HostileRuntime.AttackerToken, attackerLimits));
        return (runtime, table);
    }

    [SkippableFact]
    public async Task Nul_characters_are_the_attackers_400_and_the_shared_store_keeps_serving_the_bystander()
    {
        var (started, _) = await StartAsync();
        await using var runtime = started;

        // Four times the store's breaker threshold (5 consecutive backend failures), alternating with the bystander.
        for (var i = 0; i < 20; i++)
        {
            using (var save = await runtime.Attacker.PostAsync("/v1.0/state/statestore", Json($$"""[{"key":"nul\u0000{{i}}","value":1}]""")))
            {
                Assert.Equal(HttpStatusCode.BadRequest, save.StatusCode);
                await HostileRuntime.AssertClientErrorAsync(save, "ERR_STATE_SAVE");
            }
            using (var transaction = await runtime.Attacker.PostAsync("/v1.0/state/statestore/transaction",
                Json($$$"""{"operations":[{"operation":"upsert","request":{"key":"fine{{{i}}}","value":1}},{"operation":"upsert","request":{"key":"\u0000","value":1}}]}""")))
            {
                Assert.Equal(HttpStatusCode.BadRequest, transaction.StatusCode);
                await HostileRuntime.AssertClientErrorAsync(transaction, "ERR_STATE_TRANSACTION");
            }
            using (var read = await runtime.Attacker.GetAsync($"/v1.0/state/statestore/nul%00{i}"))
            {
                // Kestrel itself refuses %00 in a path, before the runtime sees the request.
                Assert.Equal(HttpStatusCode.BadRequest, read.StatusCode);
            }
            await runtime.AssertBystanderServedAsync();
        }

        // Nothing of the refused transactions was written, and the attacker's own valid writes still work.
        using (var fine = await runtime.Attacker.GetAsync("/v1.0/state/statestore/fine0"))
        {
            Assert.Equal(HttpStatusCode.NoContent, fine.StatusCode);
        }
        using (var valid = await runtime.Attacker.PostAsync("/v1.0/state/statestore", Json("""[{"key":"valid","value":1}]""")))
        {
            Assert.Equal(HttpStatusCode.NoContent, valid.StatusCode);
        }
        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"peak RSS {peak / (1024 * 1024)} MB");
    }

    [SkippableFact]
    public async Task Rows_written_with_a_one_second_ttl_count_toward_the_quota_until_deleted()
    {
        var (started, table) = await StartAsync("stateMaxBytes: 20000");
        await using var runtime = started;
        var value = new string('v', 1000);

        // Each write is a new key that expires a second later; the quota ends them all the same.
        var accepted = 0;
        while (true)
        {
            using var save = await runtime.Attacker.PostAsync("/v1.0/state/statestore",
                Json($$$"""[{"key":"ttl{{{accepted}}}","value":"{{{value}}}","metadata":{"ttlInSeconds":"1"}}]"""));
            if (save.StatusCode != HttpStatusCode.NoContent)
            {
                await AssertQuotaExceededAsync(save);
                break;
            }
            Assert.True(++accepted < 100, "100 writes of 1 KB with a 1 s TTL were accepted under a 20000-byte quota");
        }

        // Expired, so invisible, but still in the table: a new key is still refused.
        await Eventually.TrueAsync(async () =>
        {
            using var read = await runtime.Attacker.GetAsync("/v1.0/state/statestore/ttl0");
            return read.StatusCode == HttpStatusCode.NoContent;
        }, TimeSpan.FromSeconds(10), "the first key never expired");
        using (var again = await runtime.Attacker.PostAsync("/v1.0/state/statestore",
            Json($$$"""[{"key":"after-expiry","value":"{{{value}}}","metadata":{"ttlInSeconds":"1"}}]""")))
        {
            await AssertQuotaExceededAsync(again);
        }

        // What the attacker left in the table is bounded by its quota.
        await using var connection = new NpgsqlConnection(server.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"SELECT count(*), COALESCE(sum(octet_length(key) + octet_length(value)), 0)::bigint FROM {table} WHERE prefix = 'attacker'", connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        var (rows, bytes) = (reader.GetInt64(0), reader.GetInt64(1));
        Assert.Equal(accepted, rows);
        Assert.True(bytes <= 20000, $"the attacker's rows hold {bytes} bytes, over its 20000-byte quota");

        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"{accepted} writes accepted, {rows} rows ({bytes} bytes) stored; peak RSS {peak / (1024 * 1024)} MB");
    }

    private static async Task AssertQuotaExceededAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 507, $"expected 507, got {(int)response.StatusCode}: {body}");
        using var json = JsonDocument.Parse(body);
        Assert.Equal("ERR_TENANT_QUOTA_EXCEEDED", json.RootElement.GetProperty("errorCode").GetString());
    }
}
