using System.Diagnostics;
using System.Text;
using SharedRuntime.ComponentTests.Servers;

namespace SharedRuntime.ComponentTests.State;

/// <summary>What an app sees when the Redis server goes away and comes back: quick errors, then service again.</summary>
public sealed class RedisStateStoreFailureTests(RedisServer server) : IClassFixture<RedisServer>
{
    private static readonly byte[] Value = Encoding.UTF8.GetBytes("v");

    [SkippableFact]
    public async Task CallsFailFastWhileServerIsDownAndWorkAgainAfterRestart()
    {
        TestServers.Require("redis-server", server.Missing);
        await using var store = await StateStores.CreateAsync("state.redis", new Dictionary<string, string> { ["redisHost"] = server.Host });
        await store.SetAsync(new StateSetRequest("a||k", Value), default).Timed();

        await server.StopAsync();
        foreach (var call in new Func<Task>[]
        {
            () => store.GetAsync("a||k", default).AsTask(),
            () => store.SetAsync(new StateSetRequest("a||k", Value), default).AsTask(),
            () => store.TransactAsync([new StateOperation(null, new StateDeleteRequest("a||k"))], default).AsTask(),
            () => store.GetUsageAsync("a", default).AsTask(),
        })
        {
            var elapsed = Stopwatch.StartNew();
            await Assert.ThrowsAsync<ComponentException>(() => call().WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.True(elapsed.Elapsed < TimeSpan.FromSeconds(2), $"a call failed only after {elapsed.Elapsed} while redis was down");
        }

        await server.StartAsync();
        var restarted = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await store.SetAsync(new StateSetRequest("a||k", Value), default).Timed();
                break;
            }
            catch (ComponentException) when (restarted.Elapsed < TimeSpan.FromSeconds(5))
            {
                await Task.Delay(100);
            }
        }
        Assert.True(restarted.Elapsed < TimeSpan.FromSeconds(5), $"store worked again only {restarted.Elapsed} after redis restarted");
        Assert.NotNull(await store.GetAsync("a||k", default).Timed());
    }
}
