using System.Diagnostics;
using System.Text;

namespace SharedRuntime.ComponentTests.State;

/// <summary>
/// What every state store must do, run against each store's real server: Dapr's etag rules, TTL, all-or-nothing
/// transactions, and usage that never counts another tenant's keys. Each test gets an empty store.
/// </summary>
public abstract class StateStoreConformanceTests : IAsyncLifetime
{
    private const string A = "a||";
    private const string B = "b||";
    private IStateStore? _store;
    private string? _skip;

    protected IStateStore Store => _store ?? throw new InvalidOperationException("store not created");

    /// <summary>A new, empty store (skips or fails when its server is missing).</summary>
    protected abstract Task<IStateStore> CreateStoreAsync();

    public async Task InitializeAsync()
    {
        try
        {
            _store = await CreateStoreAsync();
        }
        catch (SkipException ex)
        {
            // Reported by each test through Ready(): a skip thrown here would not reach the runner as one.
            _skip = ex.Message;
        }
    }

    public async Task DisposeAsync()
    {
        if (_store is not null)
        {
            await _store.DisposeAsync();
        }
    }

    private IStateStore Ready()
    {
        Skip.If(_skip is not null, _skip);
        return Store;
    }

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    private static string Text(StateEntry? entry) => Encoding.UTF8.GetString(Assert.IsType<StateEntry>(entry).Value.Span);

    [SkippableFact]
    public async Task GetMissingKeyReturnsNull()
    {
        Assert.Null(await Ready().GetAsync(A + "missing", default).Timed());
    }

    [SkippableFact]
    public async Task SetThenGetReturnsValueAndETag()
    {
        var store = Ready();
        var etag = await store.SetAsync(new StateSetRequest(A + "k", Bytes("hello"), ContentType: "text/plain"), default).Timed();
        var entry = await store.GetAsync(A + "k", default).Timed();
        Assert.Equal("hello", Text(entry));
        Assert.Equal(etag, entry!.ETag);
        Assert.Null(entry.ExpiresAt);
    }

    [SkippableFact]
    public async Task ETagChangesOnEveryWrite()
    {
        var store = Ready();
        var first = await store.SetAsync(new StateSetRequest(A + "k", Bytes("1")), default).Timed();
        var second = await store.SetAsync(new StateSetRequest(A + "k", Bytes("2")), default).Timed();
        Assert.NotEqual(first, second);
        Assert.Equal(second, (await store.GetAsync(A + "k", default).Timed())!.ETag);
    }

    [SkippableFact]
    public async Task SetWithCurrentETagSucceedsAndStaleETagIsMismatch()
    {
        var store = Ready();
        var stale = await store.SetAsync(new StateSetRequest(A + "k", Bytes("1")), default).Timed();
        var current = await store.SetAsync(new StateSetRequest(A + "k", Bytes("2"), stale), default).Timed();
        await Assert.ThrowsAsync<StateETagMismatchException>(() => store.SetAsync(new StateSetRequest(A + "k", Bytes("3"), stale), default).Timed());
        await Assert.ThrowsAsync<StateETagMismatchException>(() => store.SetAsync(new StateSetRequest(A + "new", Bytes("3"), current), default).Timed());
        Assert.Equal("2", Text(await store.GetAsync(A + "k", default).Timed()));
    }

    [SkippableFact]
    public async Task NonNumericETagIsInvalid()
    {
        var store = Ready();
        await store.SetAsync(new StateSetRequest(A + "k", Bytes("1")), default).Timed();
        await Assert.ThrowsAsync<StateETagInvalidException>(() => store.SetAsync(new StateSetRequest(A + "k", Bytes("2"), "not-a-version"), default).Timed());
        await Assert.ThrowsAsync<StateETagInvalidException>(() => store.DeleteAsync(new StateDeleteRequest(A + "k", "not-a-version"), default).Timed());
    }

    [SkippableFact]
    public async Task FirstWriteWithoutETagOnlyCreates()
    {
        var store = Ready();
        await store.SetAsync(new StateSetRequest(A + "k", Bytes("1"), Concurrency: StateConcurrency.FirstWrite), default).Timed();
        await Assert.ThrowsAsync<StateETagMismatchException>(() =>
            store.SetAsync(new StateSetRequest(A + "k", Bytes("2"), Concurrency: StateConcurrency.FirstWrite), default).Timed());
        Assert.Equal("1", Text(await store.GetAsync(A + "k", default).Timed()));
    }

    [SkippableFact]
    public async Task LastWriteIgnoresETag()
    {
        var store = Ready();
        var stale = await store.SetAsync(new StateSetRequest(A + "k", Bytes("1")), default).Timed();
        await store.SetAsync(new StateSetRequest(A + "k", Bytes("2")), default).Timed();
        await store.SetAsync(new StateSetRequest(A + "k", Bytes("3"), stale, StateConcurrency.LastWrite), default).Timed();
        Assert.Equal("3", Text(await store.GetAsync(A + "k", default).Timed()));
    }

    [SkippableFact]
    public async Task DeleteWithoutETagRemovesAndMissingKeySucceeds()
    {
        var store = Ready();
        await store.SetAsync(new StateSetRequest(A + "k", Bytes("1")), default).Timed();
        await store.DeleteAsync(new StateDeleteRequest(A + "k"), default).Timed();
        Assert.Null(await store.GetAsync(A + "k", default).Timed());
        await store.DeleteAsync(new StateDeleteRequest(A + "k"), default).Timed();
    }

    [SkippableFact]
    public async Task DeleteWithETagChecksIt()
    {
        var store = Ready();
        var stale = await store.SetAsync(new StateSetRequest(A + "k", Bytes("1")), default).Timed();
        var current = await store.SetAsync(new StateSetRequest(A + "k", Bytes("2")), default).Timed();
        await Assert.ThrowsAsync<StateETagMismatchException>(() => store.DeleteAsync(new StateDeleteRequest(A + "k", stale), default).Timed());
        Assert.NotNull(await store.GetAsync(A + "k", default).Timed());
        await store.DeleteAsync(new StateDeleteRequest(A + "k", current), default).Timed();
        Assert.Null(await store.GetAsync(A + "k", default).Timed());
        await Assert.ThrowsAsync<StateETagMismatchException>(() => store.DeleteAsync(new StateDeleteRequest(A + "k", current), default).Timed());
    }

    [SkippableFact]
    public async Task KeyExpiresAfterTtl()
    {
        var store = Ready();
        await store.SetAsync(new StateSetRequest(A + "short", Bytes("1"), Ttl: TimeSpan.FromSeconds(1)), default).Timed();
        await store.SetAsync(new StateSetRequest(A + "long", Bytes("1"), Ttl: TimeSpan.FromMinutes(10)), default).Timed();
        var entry = await store.GetAsync(A + "short", default).Timed();
        Assert.NotNull(entry?.ExpiresAt);

        // Real servers keep real time: poll until the key is gone, with a limit.
        var waited = Stopwatch.StartNew();
        while (await store.GetAsync(A + "short", default).Timed() is not null)
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(10), "key with a 1 s TTL still readable after 10 s");
            await Task.Delay(100);
        }
        Assert.True(waited.Elapsed > TimeSpan.FromMilliseconds(500), $"key expired after {waited.Elapsed}, well before its 1 s TTL");
        Assert.NotNull(await store.GetAsync(A + "long", default).Timed());
        await store.SetAsync(new StateSetRequest(A + "short", Bytes("again"), Concurrency: StateConcurrency.FirstWrite), default).Timed();
    }

    [SkippableFact]
    public async Task TransactionAppliesAllOperations()
    {
        var store = Ready();
        var etag = await store.SetAsync(new StateSetRequest(A + "k1", Bytes("1")), default).Timed();
        await store.SetAsync(new StateSetRequest(A + "k2", Bytes("1")), default).Timed();
        await store.TransactAsync(
        [
            new StateOperation(new StateSetRequest(A + "k1", Bytes("2"), etag), null),
            new StateOperation(new StateSetRequest(A + "k3", Bytes("3")), null),
            new StateOperation(null, new StateDeleteRequest(A + "k2")),
        ], default).Timed();
        Assert.Equal("2", Text(await store.GetAsync(A + "k1", default).Timed()));
        Assert.Equal("3", Text(await store.GetAsync(A + "k3", default).Timed()));
        Assert.Null(await store.GetAsync(A + "k2", default).Timed());
    }

    [SkippableFact]
    public async Task TransactionWithOneStaleETagChangesNothing()
    {
        var store = Ready();
        var etag1 = await store.SetAsync(new StateSetRequest(A + "k1", Bytes("1")), default).Timed();
        var stale2 = await store.SetAsync(new StateSetRequest(A + "k2", Bytes("1")), default).Timed();
        await store.SetAsync(new StateSetRequest(A + "k2", Bytes("2")), default).Timed();
        await Assert.ThrowsAsync<StateETagMismatchException>(() => store.TransactAsync(
        [
            new StateOperation(new StateSetRequest(A + "k1", Bytes("changed"), etag1), null),
            new StateOperation(new StateSetRequest(A + "k3", Bytes("new")), null),
            new StateOperation(null, new StateDeleteRequest(A + "k2", stale2)),
        ], default).Timed());
        Assert.Equal("1", Text(await store.GetAsync(A + "k1", default).Timed()));
        Assert.Equal(etag1, (await store.GetAsync(A + "k1", default).Timed())!.ETag);
        Assert.Equal("2", Text(await store.GetAsync(A + "k2", default).Timed()));
        Assert.Null(await store.GetAsync(A + "k3", default).Timed());
    }

    [SkippableFact]
    public async Task UsageCountsOnlyTheGivenPrefix()
    {
        var store = Ready();
        await store.SetAsync(new StateSetRequest(A + "k1", Bytes("12345")), default).Timed();
        await store.SetAsync(new StateSetRequest(A + "k2", Bytes("123")), default).Timed();
        await store.SetAsync(new StateSetRequest(B + "k1", Bytes("1234567")), default).Timed();
        await store.SetAsync(new StateSetRequest("ab||k1", Bytes("1")), default).Timed();

        Assert.Equal(new StateUsage(2, 8), await store.GetUsageAsync("a", default).Timed());
        Assert.Equal(new StateUsage(1, 7), await store.GetUsageAsync("b", default).Timed());

        await store.DeleteAsync(new StateDeleteRequest(A + "k1"), default).Timed();
        await store.SetAsync(new StateSetRequest(B + "k1", Bytes("12")), default).Timed();
        Assert.Equal(new StateUsage(1, 3), await store.GetUsageAsync("a", default).Timed());
        Assert.Equal(new StateUsage(1, 2), await store.GetUsageAsync("b", default).Timed());
        Assert.Equal(default, await store.GetUsageAsync("c", default).Timed());
    }

    [SkippableFact]
    public async Task UsagePrefixWithPatternCharactersMatchesOnlyItself()
    {
        var store = Ready();
        await store.SetAsync(new StateSetRequest("x?||k", Bytes("12")), default).Timed();
        await store.SetAsync(new StateSetRequest("xy||k", Bytes("1234")), default).Timed();
        await store.SetAsync(new StateSetRequest("x*||k", Bytes("123456")), default).Timed();
        Assert.Equal(new StateUsage(1, 2), await store.GetUsageAsync("x?", default).Timed());
        Assert.Equal(new StateUsage(1, 6), await store.GetUsageAsync("x*", default).Timed());
    }
}
