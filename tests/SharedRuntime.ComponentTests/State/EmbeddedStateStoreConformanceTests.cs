namespace SharedRuntime.ComponentTests.State;

public sealed class InMemoryStateStoreConformanceTests : StateStoreConformanceTests
{
    protected override Task<IStateStore> CreateStoreAsync() => StateStores.CreateAsync("state.in-memory", new Dictionary<string, string>());
}

public sealed class SqliteStateStoreConformanceTests : StateStoreConformanceTests, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sharedruntime-sqlite-");

    private string Database => Path.Combine(_dir.FullName, "state.db");

    protected override Task<IStateStore> CreateStoreAsync() =>
        StateStores.CreateAsync("state.sqlite", new Dictionary<string, string> { ["connectionString"] = Database });

    protected override async Task<bool> PutWithoutUsageAsync(IReadOnlyList<(string Key, string Value, string? ContentType)> entries)
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Database}");
        await connection.OpenAsync();
        foreach (var (key, value, contentType) in entries)
        {
            await using var command = connection.CreateCommand();
            command.CommandText = "INSERT INTO state (key, value, etag, content_type, prefix) VALUES ($key, $value, 1, $contentType, $prefix)";
            command.Parameters.AddWithValue("$key", key);
            command.Parameters.AddWithValue("$value", System.Text.Encoding.UTF8.GetBytes(value));
            command.Parameters.AddWithValue("$contentType", (object?)contentType ?? DBNull.Value);
            command.Parameters.AddWithValue("$prefix", StateKeys.PrefixOf(key).ToString());
            await command.ExecuteNonQueryAsync();
        }
        return true;
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _dir.Delete(recursive: true);
    }
}
