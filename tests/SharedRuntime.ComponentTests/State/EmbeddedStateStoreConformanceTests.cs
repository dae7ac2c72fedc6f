namespace SharedRuntime.ComponentTests.State;

public sealed class InMemoryStateStoreConformanceTests : StateStoreConformanceTests
{
    protected override Task<IStateStore> CreateStoreAsync() => StateStores.CreateAsync("state.in-memory", new Dictionary<string, string>());
}

public sealed class SqliteStateStoreConformanceTests : StateStoreConformanceTests, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sharedruntime-sqlite-");

    protected override Task<IStateStore> CreateStoreAsync() =>
        StateStores.CreateAsync("state.sqlite", new Dictionary<string, string> { ["connectionString"] = Path.Combine(_dir.FullName, "state.db") });

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _dir.Delete(recursive: true);
    }
}
