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
}
