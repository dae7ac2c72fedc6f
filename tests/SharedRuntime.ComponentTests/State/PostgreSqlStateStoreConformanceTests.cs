using System.Text;
using SharedRuntime.ComponentTests.Servers;
using SharedRuntime.Tests;

namespace SharedRuntime.ComponentTests.State;

public sealed class PostgreSqlStateStoreConformanceTests(PostgreSqlServer server) : StateStoreConformanceTests, IClassFixture<PostgreSqlServer>
{
    private static int s_tables;

    /// <summary>Each test gets its own table, created by the store on first use.</summary>
    private string? _table;

    protected override Task<IStateStore> CreateStoreAsync()
    {
        TestServers.Require("PostgreSQL", server.Missing);
        _table = $"state_{Interlocked.Increment(ref s_tables)}";
        return CreateOnTableAsync(_table);
    }

    private Task<IStateStore> CreateOnTableAsync(string table) =>
        StateStores.CreateAsync("state.postgresql", new Dictionary<string, string>
        {
            ["connectionString"] = server.ConnectionString,
            ["tableName"] = table,
        });

    protected override async Task<IStateStore?> CreateSecondNodeAsync() => await CreateOnTableAsync(_table!);

    protected override async Task<bool> PutWithoutUsageAsync(IReadOnlyList<(string Key, string Value, string? ContentType)> entries)
    {
        await using var connection = new Npgsql.NpgsqlConnection(server.ConnectionString);
        await connection.OpenAsync();
        foreach (var (key, value, contentType) in entries)
        {
            await using var command = new Npgsql.NpgsqlCommand($"INSERT INTO {_table} (key, value, etag, contenttype) VALUES (@key, @value, 1, @contenttype)", connection);
            command.Parameters.AddWithValue("key", key);
            command.Parameters.AddWithValue("value", Encoding.UTF8.GetBytes(value));
            command.Parameters.AddWithValue("contenttype", (object?)contentType ?? DBNull.Value);
            await command.ExecuteNonQueryAsync();
        }
        return true;
    }

    protected override bool RefusesNul => true;

    /// <summary>A row past its TTL still takes room in the table: it counts until the cleanup deletes it.</summary>
    [SkippableFact]
    public async Task ExpiredRowsCountUntilTheCleanupDeletesThem()
    {
        TestServers.Require("PostgreSQL", server.Missing);
        await using var store = await StateStores.CreateAsync("state.postgresql", new Dictionary<string, string>
        {
            ["connectionString"] = server.ConnectionString,
            ["tableName"] = $"state_{Interlocked.Increment(ref s_tables)}",
            ["cleanupInterval"] = "2s",
        });
        await store.SetAsync(new StateSetRequest("a||short", Encoding.UTF8.GetBytes("12345"), Ttl: TimeSpan.FromSeconds(1)), default).Timed();
        var counted = new StateUsage(1, 8 + 5);

        await Eventually.TrueAsync(async () => await store.GetAsync("a||short", default).Timed() is null, TimeSpan.FromSeconds(10), "the row never expired");
        Assert.Equal(counted, await store.GetUsageAsync("a", default).Timed());

        await Eventually.TrueAsync(async () => await store.GetUsageAsync("a", default).Timed() == default, TimeSpan.FromSeconds(15), "the cleanup never deleted the expired row");
    }
}
