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

    private Task<IStateStore> OpenAsync(string path) =>
        StateStores.CreateAsync("state.sqlite", new Dictionary<string, string> { ["connectionString"] = path });

    /// <summary>Runs <paramref name="sql"/> on <paramref name="path"/> with a connection of its own, outside any store.</summary>
    private static async Task ExecuteAsync(string path, string sql, params (string Name, object Value)[] parameters)
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }
        await command.ExecuteNonQueryAsync();
    }

    private static StateOperation Set(string key, string value) => new(new StateSetRequest(key, System.Text.Encoding.UTF8.GetBytes(value)), null);

    private static StateUsage Usage(params (string Key, string Value)[] rows) =>
        rows.Aggregate(default(StateUsage), (total, row) => total + StateUsage.Of(row.Key, System.Text.Encoding.UTF8.GetByteCount(row.Value), null));

    /// <summary>A row put into the file behind the store's back: a store that counted again would see it.</summary>
    private static Task SneakInAsync(string path, string key) =>
        ExecuteAsync(path, "INSERT INTO state (key, value, etag, prefix) VALUES ($key, x'00', 1, $prefix)", ("$key", key), ("$prefix", StateKeys.PrefixOf(key).ToString()));

    [Fact]
    public async Task UsageSurvivesARestartOfTheStoreOnTheSameFile()
    {
        var path = Path.Combine(_dir.FullName, "restart.db");
        await using (var store = await OpenAsync(path))
        {
            await store.TransactAsync([Set("a||1", "one"), Set("a||2", "two")], new StateAllowance("a", 10, 1000), default).Timed();
            await store.DeleteAsync(new StateDeleteRequest("a||2"), default).Timed();
            await store.SetAsync(new StateSetRequest("a||3", System.Text.Encoding.UTF8.GetBytes("three")), default).Timed();
        }
        await SneakInAsync(path, "a||sneaked");

        await using var reopened = await OpenAsync(path);
        // The usage kept in the file, not a new count: the row put in behind the store's back is not in it.
        Assert.Equal(Usage(("a||1", "one"), ("a||3", "three")), await reopened.GetUsageAsync("a", default).Timed());

        // And the allowance after the restart checks against it: two kept, room for one more of three.
        var allowance = new StateAllowance("a", MaxKeys: 3, MaxBytes: long.MaxValue);
        await reopened.TransactAsync([Set("a||4", "four")], allowance, default).Timed();
        await Assert.ThrowsAsync<StateQuotaExceededException>(() => reopened.TransactAsync([Set("a||5", "five")], allowance, default).Timed());
    }

    [Fact]
    public async Task UsageOfAFileWrittenBeforeUsageWasKeptIsSeededOnce()
    {
        // A file as a store that kept no usage table left it.
        var path = Path.Combine(_dir.FullName, "old.db");
        await ExecuteAsync(path, """
            CREATE TABLE state (key TEXT NOT NULL PRIMARY KEY, value BLOB NOT NULL, etag INTEGER NOT NULL, expires_at INTEGER NULL,
              content_type TEXT NULL, prefix TEXT NOT NULL);
            INSERT INTO state (key, value, etag, prefix) VALUES ('s||1', CAST('one' AS BLOB), 3, 's'), ('s||2', CAST('two' AS BLOB), 1, 's'),
              ('t||1', CAST('x' AS BLOB), 1, 't');
            """);

        await using (var store = await OpenAsync(path))
        {
            Assert.Equal(Usage(("s||1", "one"), ("s||2", "two")), await store.GetUsageAsync("s", default).Timed());
            await SneakInAsync(path, "s||sneaked");
            // Counted once: the row put in after the seeding is not counted, now or after a write.
            Assert.Equal(Usage(("s||1", "one"), ("s||2", "two")), await store.GetUsageAsync("s", default).Timed());
            await store.SetAsync(new StateSetRequest("s||3", System.Text.Encoding.UTF8.GetBytes("three")), default).Timed();
            Assert.Equal(Usage(("s||1", "one"), ("s||2", "two"), ("s||3", "three")), await store.GetUsageAsync("s", default).Timed());

            // A write is the first touch of prefix t: seeded inside its transaction, and the write counted once on top.
            await store.SetAsync(new StateSetRequest("t||2", System.Text.Encoding.UTF8.GetBytes("22")), default).Timed();
            Assert.Equal(Usage(("t||1", "x"), ("t||2", "22")), await store.GetUsageAsync("t", default).Timed());

            // The old rows keep their versions.
            Assert.Equal("3", (await store.GetAsync("s||1", default).Timed())!.ETag);
        }
        await using var reopened = await OpenAsync(path);
        Assert.Equal(Usage(("s||1", "one"), ("s||2", "two"), ("s||3", "three")), await reopened.GetUsageAsync("s", default).Timed());
    }

    [Fact]
    public async Task ASecondTenantsUsageIsSeparate()
    {
        var path = Path.Combine(_dir.FullName, "tenants.db");
        var full = new StateAllowance("a", MaxKeys: 2, MaxBytes: long.MaxValue);
        await using (var store = await OpenAsync(path))
        {
            await store.TransactAsync([Set("a||1", "x"), Set("a||2", "x")], full, default).Timed();
            await Assert.ThrowsAsync<StateQuotaExceededException>(() => store.TransactAsync([Set("a||3", "x")], full, default).Timed());

            // Tenant b writes as much as its own allowance lets it, whatever a holds, and a's refusal did not count.
            var b = new StateAllowance("b", MaxKeys: 3, MaxBytes: long.MaxValue);
            await store.TransactAsync([Set("b||1", "yy"), Set("b||2", "yy"), Set("b||3", "yy")], b, default).Timed();
            Assert.Equal(Usage(("a||1", "x"), ("a||2", "x")), await store.GetUsageAsync("a", default).Timed());
            Assert.Equal(Usage(("b||1", "yy"), ("b||2", "yy"), ("b||3", "yy")), await store.GetUsageAsync("b", default).Timed());

            // A delete of a's frees room for a only.
            await store.DeleteAsync(new StateDeleteRequest("a||1"), default).Timed();
            await Assert.ThrowsAsync<StateQuotaExceededException>(() => store.TransactAsync([Set("b||4", "yy")], b, default).Timed());
            await store.TransactAsync([Set("a||3", "x")], full, default).Timed();
        }
        await using var reopened = await OpenAsync(path);
        Assert.Equal(Usage(("a||2", "x"), ("a||3", "x")), await reopened.GetUsageAsync("a", default).Timed());
        Assert.Equal(Usage(("b||1", "yy"), ("b||2", "yy"), ("b||3", "yy")), await reopened.GetUsageAsync("b", default).Timed());
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _dir.Delete(recursive: true);
    }
}
