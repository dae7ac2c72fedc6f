using Microsoft.Extensions.Time.Testing;
using SharedRuntime.Components;
using SharedRuntime.Components.Lock;

namespace SharedRuntime.Tests.Components;

public class InMemoryLockStoreTests
{
    [Fact]
    public async Task AnAppHoldsAtMostItsBoundOfLiveLocksAndExpiredOnesFreeTheirPlace()
    {
        var time = new FakeTimeProvider();
        var store = new InMemoryLockStore(time, maxLocksPerApp: 3);
        Assert.True(await store.TryLockAsync("a||short", "o", TimeSpan.FromSeconds(10), default));
        Assert.True(await store.TryLockAsync("a||r1", "o", TimeSpan.FromSeconds(60), default));
        Assert.True(await store.TryLockAsync("a||r2", "o", TimeSpan.FromSeconds(60), default));

        var refused = await Assert.ThrowsAsync<LockLimitExceededException>(() => store.TryLockAsync("a||r3", "o", TimeSpan.FromSeconds(60), default).AsTask());
        Assert.Equal(TimeSpan.FromSeconds(10), refused.RetryAfter);
        Assert.False(await store.TryLockAsync("a||r1", "other", TimeSpan.FromSeconds(60), default));
        Assert.True(await store.TryLockAsync("b||r1", "o", TimeSpan.FromSeconds(60), default));

        time.Advance(TimeSpan.FromSeconds(10));
        Assert.True(await store.TryLockAsync("a||r3", "o", TimeSpan.FromSeconds(60), default));
        Assert.Equal(3, store.HeldBy("a"));
        Assert.Equal(UnlockStatus.LockDoesNotExist, await store.UnlockAsync("a||short", "o", default));

        Assert.Equal(UnlockStatus.Success, await store.UnlockAsync("a||r1", "o", default));
        Assert.True(await store.TryLockAsync("a||r4", "o", TimeSpan.FromSeconds(60), default));
    }

    [Fact]
    public void TheBoundComesFromComponentMetadata()
    {
        ComponentContext Context(string? max) => new()
        {
            Name = "locks",
            Type = "lock.in-memory",
            Version = "v1",
            Metadata = max is null ? new Dictionary<string, string>() : new Dictionary<string, string> { ["maxLocksPerApp"] = max },
            Services = null!,
        };
        Assert.Equal(InMemoryLockStore.DefaultMaxLocksPerApp, InMemoryLockStore.Create(Context(null), TimeProvider.System).MaxLocksPerApp);
        Assert.Equal(5, InMemoryLockStore.Create(Context("5"), TimeProvider.System).MaxLocksPerApp);
        Assert.Throws<ComponentException>(() => InMemoryLockStore.Create(Context("0"), TimeProvider.System));
    }
}
