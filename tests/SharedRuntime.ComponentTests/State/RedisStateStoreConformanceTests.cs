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
}
