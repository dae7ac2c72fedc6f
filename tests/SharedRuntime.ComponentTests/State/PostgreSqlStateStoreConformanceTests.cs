using SharedRuntime.ComponentTests.Servers;

namespace SharedRuntime.ComponentTests.State;

public sealed class PostgreSqlStateStoreConformanceTests(PostgreSqlServer server) : StateStoreConformanceTests, IClassFixture<PostgreSqlServer>
{
    private static int s_tables;

    /// <summary>Each test gets its own table, created by the store on first use.</summary>
    protected override Task<IStateStore> CreateStoreAsync()
    {
        TestServers.Require("PostgreSQL", server.Missing);
        return StateStores.CreateAsync("state.postgresql", new Dictionary<string, string>
        {
            ["connectionString"] = server.ConnectionString,
            ["tableName"] = $"state_{Interlocked.Increment(ref s_tables)}",
        });
    }
}
