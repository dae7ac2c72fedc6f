using Microsoft.Extensions.Time.Testing;
using SharedRuntime.AppChannel;
using SharedRuntime.Components;
using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.AppChannel;

/// <summary>Bulk batches: sent when full, when the oldest event has waited maxAwaitDuration, or before passing the byte bound; one per route path.</summary>
public sealed class BulkBatcherTests
{
    private readonly FakeTimeProvider _time = new();
    private readonly List<(string Path, int Count)> _sent = [];

    private BulkBatcher Batcher(int maxMessagesCount, int maxAwaitMs) =>
        new(new BulkSubscribeConfig(maxMessagesCount, TimeSpan.FromMilliseconds(maxAwaitMs)), _time, (path, entries, _) =>
        {
            lock (_sent)
            {
                _sent.Add((path, entries.Count));
            }
            return Task.FromResult<IReadOnlyList<BulkVerdict>>([.. entries.Select(_ => new BulkVerdict(DeliveryOutcome.Success))]);
        });

    private static BulkEntry Entry(int bytes = 10) =>
        new(new ReceivedMessage("t", new byte[bytes], "application/cloudevents+json", new Dictionary<string, string>(), 1),
            new EventDelivery.Content(new byte[bytes], new("application/cloudevents+json"), "/p", null));

    [Fact]
    public async Task A_full_batch_goes_at_once_and_a_partial_one_after_maxAwaitDuration()
    {
        var batcher = Batcher(3, 500);
        var first = Enumerable.Range(0, 3).Select(_ => batcher.JoinAsync("/p", Entry(), default)).ToList();
        Assert.All(await Task.WhenAll(first).WaitAsync(TimeSpan.FromSeconds(5)), v => Assert.Equal(DeliveryOutcome.Success, v.Outcome));
        Assert.Equal([("/p", 3)], _sent);

        var partial = batcher.JoinAsync("/p", Entry(), default);
        var otherPath = batcher.JoinAsync("/q", Entry(), default);
        _time.Advance(TimeSpan.FromMilliseconds(499));
        Assert.False(partial.IsCompleted);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        await Task.WhenAll(partial, otherPath).WaitAsync(TimeSpan.FromSeconds(5));
        lock (_sent)
        {
            Assert.Equal([("/p", 3), ("/p", 1), ("/q", 1)], _sent.Take(1).Concat(_sent.Skip(1).OrderBy(s => s.Path)));
        }
    }

    [Fact]
    public async Task A_batch_never_passes_the_byte_bound()
    {
        var batcher = Batcher(100, 500);
        var big = (int)(BulkBatcher.MaxBytes / 2) + 1;
        var first = batcher.JoinAsync("/p", Entry(big), default);
        var second = batcher.JoinAsync("/p", Entry(big), default); // would pass the bound: the first goes alone
        await first.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(second.IsCompleted);
        _time.Advance(TimeSpan.FromMilliseconds(500));
        await second.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal([("/p", 1), ("/p", 1)], _sent);
    }

    [Fact]
    public async Task A_stopped_subscription_sends_nothing_it_was_still_collecting()
    {
        var batcher = Batcher(10, 500);
        using var stop = new CancellationTokenSource();
        var waiting = batcher.JoinAsync("/p", Entry(), stop.Token);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(5)));
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Empty(_sent);
    }

    [Theory]
    [InlineData(null, null, true, 100, 1000)]
    [InlineData(1000L, 60000L, true, 1000, 60000)]
    [InlineData(1001L, null, false, 0, 0)]
    [InlineData(0L, null, false, 0, 0)]
    [InlineData(null, 60001L, false, 0, 0)]
    public void Bulk_settings_have_Daprs_defaults_and_bounds(long? count, long? awaitMs, bool valid, int expectedCount, int expectedAwaitMs)
    {
        var config = BulkSubscribeConfig.Of(true, count, awaitMs, out var problem);
        Assert.Equal(valid, problem is null);
        if (valid)
        {
            Assert.Equal(new BulkSubscribeConfig(expectedCount, TimeSpan.FromMilliseconds(expectedAwaitMs)), config);
        }
        Assert.Null(BulkSubscribeConfig.Of(false, 5, 5, out _));
    }
}
