using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using SharedRuntime.ComponentTests.Servers;
using SharedRuntime.Components.Lock;
using SharedRuntime.Tests;
using StackExchange.Redis;
using static SharedRuntime.ComponentTests.Servers.ApiCalls;

namespace SharedRuntime.ComponentTests.Lock;

/// <summary>
/// <c>lock.redis</c> against a real redis-server: Dapr's key layout and unlock statuses, one owner when two runtimes
/// contend, the per-app bound held across runtimes, and tenants that cannot reach each other's locks.
/// </summary>
public sealed class RedisLockTests(RedisServer server) : IClassFixture<RedisServer>, IAsyncLifetime
{
    public async Task InitializeAsync()
    {
        if (server.Missing is null)
        {
            await server.FlushAsync();
        }
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private async Task<RedisLockStore> StoreAsync(int? maxLocksPerApp = null)
    {
        var metadata = new Dictionary<string, string> { ["redisHost"] = server.Host };
        if (maxLocksPerApp is { } max)
        {
            metadata["maxLocksPerApp"] = max.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        var store = RedisLockStore.Create(Context("locks", "lock.redis", metadata), NullLogger<RedisLockStore>.Instance);
        await store.InitAsync(default);
        return store;
    }

    [SkippableFact]
    public async Task LocksUseDaprsKeysAndAnswerDaprsUnlockStatuses()
    {
        TestServers.Require("redis-server", server.Missing);
        await using var store = await StoreAsync();
        Assert.True(await store.TryLockAsync("orders||r1", "alice", TimeSpan.FromSeconds(30), default));
        Assert.False(await store.TryLockAsync("orders||r1", "bob", TimeSpan.FromSeconds(30), default));

        await using var redis = await ConnectionMultiplexer.ConnectAsync(server.Host);
        Assert.Equal("alice", (string?)await redis.GetDatabase().StringGetAsync("lock||orders||r1"));
        var ttl = await redis.GetDatabase().KeyTimeToLiveAsync("lock||orders||r1");
        Assert.InRange(ttl!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));

        Assert.Equal(UnlockStatus.LockBelongsToOthers, await store.UnlockAsync("orders||r1", "bob", default));
        Assert.Equal(UnlockStatus.LockDoesNotExist, await store.UnlockAsync("orders||nope", "alice", default));
        Assert.Equal(UnlockStatus.Success, await store.UnlockAsync("orders||r1", "alice", default));
        Assert.Equal(UnlockStatus.LockDoesNotExist, await store.UnlockAsync("orders||r1", "alice", default));
        Assert.Equal(0, await store.HeldByAsync("orders"));

        // A lock expires on its own.
        Assert.True(await store.TryLockAsync("orders||short", "alice", TimeSpan.FromMilliseconds(200), default));
        await Eventually.TrueAsync(async () => await store.TryLockAsync("orders||short", "bob", TimeSpan.FromSeconds(30), default), TimeSpan.FromSeconds(10));
    }

    [SkippableFact]
    public async Task AnAppsBoundHoldsAcrossStoresAndLeavesOtherAppsAlone()
    {
        TestServers.Require("redis-server", server.Missing);
        await using var first = await StoreAsync(maxLocksPerApp: 3);
        await using var second = await StoreAsync(maxLocksPerApp: 3);
        Assert.True(await first.TryLockAsync("orders||a", "o", TimeSpan.FromSeconds(60), default));
        Assert.True(await second.TryLockAsync("orders||b", "o", TimeSpan.FromSeconds(60), default));
        Assert.True(await first.TryLockAsync("orders||c", "o", TimeSpan.FromSeconds(30), default));

        var refused = await Assert.ThrowsAsync<LockLimitExceededException>(() => second.TryLockAsync("orders||d", "o", TimeSpan.FromSeconds(60), default).AsTask());
        Assert.InRange(refused.RetryAfter, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
        Assert.True(await second.TryLockAsync("billing||a", "o", TimeSpan.FromSeconds(60), default));

        Assert.Equal(UnlockStatus.Success, await second.UnlockAsync("orders||a", "o", default));
        Assert.True(await second.TryLockAsync("orders||d", "o", TimeSpan.FromSeconds(60), default));
        Assert.Equal(3, await first.HeldByAsync("orders"));
    }

    [SkippableFact]
    public async Task TwoRuntimesContendingForOneLockGiveItExactlyOneOwner()
    {
        TestServers.Require("redis-server", server.Missing);
        var yaml = Resources.Tenant("orders", "orders-token") + Resources.Tenant("billing", "billing-token")
            + Resources.Component("locks", "lock.redis", new Dictionary<string, string> { ["redisHost"] = server.Host, ["maxLocksPerApp"] = "5" });
        await using var one = await TestRuntime.StartAsync(yaml);
        await using var two = await TestRuntime.StartAsync(yaml);
        HttpClient[] clients = [one.Client("orders-token"), two.Client("orders-token")];

        var attempts = Enumerable.Range(0, 40).Select(i => TryLockAsync(clients[i % 2], "job", $"owner-{i}")).ToList();
        var results = await Task.WhenAll(attempts);
        var owners = results.Where(r => r.Success).Select(r => r.Owner).ToList();
        Assert.Single(owners);
        var owner = owners[0];

        // The other tenant has a lock of the same name of its own, and cannot release orders' lock.
        var billing = two.Client("billing-token");
        Assert.True((await TryLockAsync(billing, "job", "billing-owner")).Success);
        Assert.Equal(2, await UnlockAsync(billing, "job", owner));
        Assert.False((await TryLockAsync(clients[0], "job", "late")).Success);
        Assert.Equal(0, await UnlockAsync(clients[1], "job", owner));
        Assert.True((await TryLockAsync(clients[0], "job", "late")).Success);
    }

    [SkippableFact]
    public async Task PastItsBoundATenantGets429AndTheOtherTenantIsServed()
    {
        TestServers.Require("redis-server", server.Missing);
        var yaml = Resources.Tenant("orders", "orders-token") + Resources.Tenant("billing", "billing-token")
            + Resources.Component("locks", "lock.redis", new Dictionary<string, string> { ["redisHost"] = server.Host, ["maxLocksPerApp"] = "2" });
        await using var one = await TestRuntime.StartAsync(yaml);
        await using var two = await TestRuntime.StartAsync(yaml);
        Assert.True((await TryLockAsync(one.Client("orders-token"), "r1", "o")).Success);
        Assert.True((await TryLockAsync(two.Client("orders-token"), "r2", "o")).Success);

        var refused = await one.Client("orders-token").PostAsync("/v1.0-alpha1/lock/locks", Json("""{"resourceId":"r3","lockOwner":"o","expiryInSeconds":30}"""));
        Assert.NotNull(refused.Headers.RetryAfter);
        await ErrorAsync(refused, (HttpStatusCode)429, "ERR_TENANT_LOCKS_EXCEEDED");
        Assert.True((await TryLockAsync(one.Client("billing-token"), "r3", "o")).Success);
    }

    private static async Task<(bool Success, string Owner)> TryLockAsync(HttpClient client, string resource, string owner)
    {
        var response = await client.PostAsync("/v1.0-alpha1/lock/locks", Json($$"""{"resourceId":"{{resource}}","lockOwner":"{{owner}}","expiryInSeconds":60}"""));
        using var json = await JsonAsync(response);
        return (json.RootElement.GetProperty("success").GetBoolean(), owner);
    }

    private static async Task<int> UnlockAsync(HttpClient client, string resource, string owner)
    {
        using var json = await JsonAsync(await client.PostAsync("/v1.0-alpha1/unlock/locks", Json($$"""{"resourceId":"{{resource}}","lockOwner":"{{owner}}"}""")));
        return json.RootElement.GetProperty("status").GetInt32();
    }
}
