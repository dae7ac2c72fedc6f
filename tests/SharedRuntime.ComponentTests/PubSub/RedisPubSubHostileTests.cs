using System.Net;
using System.Text;
using SharedRuntime.ComponentTests.Servers;
using SharedRuntime.Tests;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace SharedRuntime.ComponentTests.PubSub;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RedisHostileTenantsCollection
{
    public const string Name = "redis hostile tenants";
}

/// <summary>
/// A tenant attacking a Redis database that holds both state and pub/sub streams: a topic can never take a state
/// entry's key, and a key of another type under a topic's name is the publisher's 400, never the backend's failure.
/// </summary>
[Collection(RedisHostileTenantsCollection.Name)]
public sealed class RedisPubSubHostileTests(RedisServer server, ITestOutputHelper output) : IClassFixture<RedisServer>
{
    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [SkippableFact]
    public async Task A_topic_named_like_another_tenants_state_key_is_refused_and_the_shared_store_stays_closed()
    {
        TestServers.Require("redis-server", server.Missing);
        await using var runtime = await HostileRuntime.StartAsync(new Dictionary<string, string>
        {
            ["redis.yaml"] = Resources.Component("statestore", "state.redis", new Dictionary<string, string> { ["redisHost"] = server.Host }) +
                             Resources.Component("pubsub", "pubsub.redis", new Dictionary<string, string> { ["redisHost"] = server.Host }),
        });
        using var redis = await ConnectionMultiplexer.ConnectAsync(server.Host);
        var db = redis.GetDatabase();
        using (var saved = await runtime.Bystander.PostAsync("/v1.0/state/statestore", Json("""[{"key":"orders","value":"bystander's orders"}]""")))
        {
            Assert.Equal(HttpStatusCode.NoContent, saved.StatusCode);
        }
        var stateKeyType = await db.KeyTypeAsync("bystander||orders");
        // A key without the separator, of another type: what a store with keyPrefix none, or another program, leaves.
        await db.HashSetAsync("legacy-orders", "data", "someone else's");

        for (var i = 0; i < 20; i++)
        {
            using (var collision = await runtime.Attacker.PostAsync("/v1.0/publish/pubsub/bystander%7C%7Corders", Json("{}")))
            {
                Assert.Equal(HttpStatusCode.BadRequest, collision.StatusCode);
                await HostileRuntime.AssertClientErrorAsync(collision, "ERR_MALFORMED_REQUEST");
            }
            using (var wrongType = await runtime.Attacker.PostAsync("/v1.0/publish/pubsub/legacy-orders", Json("{}")))
            {
                Assert.Equal(HttpStatusCode.BadRequest, wrongType.StatusCode);
                Assert.Contains("WRONGTYPE", await HostileRuntime.AssertClientErrorAsync(wrongType, "ERR_PUBSUB_PUBLISH_MESSAGE"), StringComparison.Ordinal);
            }
            if (i == 10)
            {
                await runtime.AssertBystanderServedAsync(); // during the attack
            }
        }

        Assert.Equal(stateKeyType, await db.KeyTypeAsync("bystander||orders"));
        Assert.Equal("\"bystander's orders\"", await runtime.Bystander.GetStringAsync("/v1.0/state/statestore/orders"));
        using (var published = await runtime.Bystander.PostAsync("/v1.0/publish/pubsub/news", Json("{}")))
        {
            Assert.Equal(HttpStatusCode.NoContent, published.StatusCode);
        }
        using (var attackerOwn = await runtime.Attacker.PostAsync("/v1.0/state/statestore", Json("""[{"key":"k","value":1}]""")))
        {
            Assert.Equal(HttpStatusCode.NoContent, attackerOwn.StatusCode); // nothing opened a breaker, not even its own
        }
        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"peak RSS {peak / 1048576} MB");
    }
}
