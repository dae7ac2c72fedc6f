using SharedRuntime.ComponentTests.Servers;

namespace SharedRuntime.ComponentTests.State;

public sealed class RedisStateStoreConformanceTests(RedisServer server) : StateStoreConformanceTests, IClassFixture<RedisServer>
{
    protected override async Task<IStateStore> CreateStoreAsync()
    {
        TestServers.Require("redis-server", server.Missing);
        await server.FlushAsync();
        return await StateStores.CreateAsync("state.redis", new Dictionary<string, string> { ["redisHost"] = server.Host });
    }

    /// <summary>A list at the key, as a stream or any other non-hash of the same name would be: WRONGTYPE for the store.</summary>
    protected override async Task<bool> PutForeignValueAsync(string storedKey)
    {
        await using var connection = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(server.Host);
        await connection.GetDatabase().ListLeftPushAsync(storedKey, "not a state entry");
        return true;
    }

    protected override async Task<IStateStore?> CreateSecondNodeAsync() =>
        await StateStores.CreateAsync("state.redis", new Dictionary<string, string> { ["redisHost"] = server.Host });

    protected override async Task<bool> PutWithoutUsageAsync(IReadOnlyList<(string Key, string Value, string? ContentType)> entries)
    {
        await using var connection = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(server.Host);
        foreach (var (key, value, contentType) in entries)
        {
            await connection.GetDatabase().HashSetAsync(key, contentType is null
                ? [new("data", value), new("version", 1)]
                : [new("data", value), new("version", 1), new("contenttype", contentType)]);
        }
        return true;
    }

    /// <summary>Redis deletes an expired key by itself; its prefix's usage drops once the store notices, not never.</summary>
    [SkippableFact]
    public async Task AKeyRedisExpiresStopsCountingOnceDeleted()
    {
        TestServers.Require("redis-server", server.Missing);
        await using var store = await CreateStoreAsync();
        await store.SetAsync(new StateSetRequest("e||short", "12345"u8.ToArray(), Ttl: TimeSpan.FromMilliseconds(300)), default).Timed();
        await store.SetAsync(new StateSetRequest("e||long", "1"u8.ToArray(), Ttl: TimeSpan.FromMinutes(10)), default).Timed();
        Assert.Equal(new StateUsage(2, 8 + 5 + 7 + 1), await store.GetUsageAsync("e", default).Timed());

        await SharedRuntime.Tests.Eventually.TrueAsync(async () => await store.GetUsageAsync("e", default).Timed() == new StateUsage(1, 7 + 1),
            TimeSpan.FromSeconds(10), "the expired key was never subtracted");

        // Writing the same key again after Redis deleted it counts it once.
        await store.SetAsync(new StateSetRequest("e||short", "1"u8.ToArray(), Ttl: TimeSpan.FromMinutes(10)), default).Timed();
        Assert.Equal(new StateUsage(2, 8 + 1 + 7 + 1), await store.GetUsageAsync("e", default).Timed());
    }
}
