using System.Collections.Concurrent;
using SharedRuntime.Admission;

namespace SharedRuntime.Tests.Admission;

public class FairQueueTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    /// <summary>Takes the queue's only slot until <paramref name="gate"/> opens.</summary>
    private static Task<int> Hold(FairQueue queue, string tenant, TaskCompletionSource gate) =>
        queue.RunAsync(tenant, gate, static async (g, _) => { await g.Task; return 0; }, CancellationToken.None).AsTask();

    private static Task<int> Record(FairQueue queue, string tenant, string name, ConcurrentQueue<string> order, CancellationToken cancellationToken = default) =>
        queue.RunAsync(tenant, (name, order), static (s, _) => { s.order.Enqueue(s.name); return ValueTask.FromResult(0); }, cancellationToken).AsTask();

    [Fact]
    public async Task ATenantWithAThousandQueuedCallsDelaysAnotherTenantsCallByAtMostOneTurn()
    {
        var queue = new FairQueue(maxConcurrency: 1, maxQueuedPerTenant: 2000);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var order = new ConcurrentQueue<string>();
        var holder = Hold(queue, "a", gate);
        var flood = Enumerable.Range(0, 1000).Select(i => Record(queue, "a", $"a{i}", order)).ToList();
        var single = Record(queue, "b", "b", order);
        Assert.Equal(1000, queue.QueuedFor("a"));
        Assert.Equal(1, queue.QueuedFor("b"));

        gate.SetResult();
        await Task.WhenAll([holder, single, .. flood]).WaitAsync(Timeout);

        var ran = order.ToList();
        Assert.Equal(1001, ran.Count);
        Assert.InRange(ran.IndexOf("b"), 0, 1);
        Assert.Equal(Enumerable.Range(0, 1000).Select(i => $"a{i}"), ran.Where(n => n != "b"));
    }

    [Fact]
    public async Task TenantsTakeTurnsWhileAllHaveCallsWaiting()
    {
        var queue = new FairQueue(maxConcurrency: 1, maxQueuedPerTenant: 10);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var order = new ConcurrentQueue<string>();
        var holder = Hold(queue, "x", gate);
        var calls = new List<Task<int>>();
        foreach (var tenant in new[] { "a", "b", "c" })
        {
            for (var i = 0; i < 3; i++)
            {
                calls.Add(Record(queue, tenant, $"{tenant}{i}", order));
            }
        }

        gate.SetResult();
        await Task.WhenAll([holder, .. calls]).WaitAsync(Timeout);

        Assert.Equal(["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"], order);
    }

    [Fact]
    public async Task ACallBeyondTheTenantsBoundIsRefusedAtOnceWhileOtherTenantsStillQueue()
    {
        var queue = new FairQueue(maxConcurrency: 1, maxQueuedPerTenant: 3);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var order = new ConcurrentQueue<string>();
        var holder = Hold(queue, "a", gate);
        var waiting = Enumerable.Range(0, 3).Select(i => Record(queue, "a", $"a{i}", order)).ToList();

        var refused = Record(queue, "a", "refused", order);
        Assert.True(refused.IsFaulted, "the call over the bound waited instead of being refused at once");
        var error = await Assert.ThrowsAsync<FairQueueFullException>(() => refused);
        Assert.Equal("a", error.Tenant);
        var other = Record(queue, "b", "b", order);
        Assert.False(other.IsCompleted);

        gate.SetResult();
        await Task.WhenAll([holder, other, .. waiting]).WaitAsync(Timeout);
        Assert.DoesNotContain("refused", order);
        Assert.Equal(4, order.Count);
    }

    [Fact]
    public async Task ACancelledWaiterLeavesItsLineAndTheSlotPassesOn()
    {
        var queue = new FairQueue(maxConcurrency: 1, maxQueuedPerTenant: 5);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var order = new ConcurrentQueue<string>();
        using var cancel = new CancellationTokenSource();
        var holder = Hold(queue, "a", gate);
        var cancelled = Record(queue, "b", "cancelled", order, cancel.Token);
        var next = Record(queue, "c", "c", order);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(Timeout));
        Assert.Equal(0, queue.QueuedFor("b"));
        gate.SetResult();
        await Task.WhenAll(holder, next).WaitAsync(Timeout);

        Assert.Equal(["c"], order);
        Assert.Equal(0, queue.InFlight);
    }

    [Fact]
    public async Task EveryCallRunsOnceAndConcurrencyStaysWithinTheBound()
    {
        var queue = new FairQueue(maxConcurrency: 4, maxQueuedPerTenant: 1000);
        var running = 0;
        var maxRunning = 0;
        var ran = new ConcurrentDictionary<string, int>();
        var calls = new List<Task<int>>();
        for (var t = 0; t < 5; t++)
        {
            for (var i = 0; i < 200; i++)
            {
                var name = $"t{t}-{i}";
                calls.Add(queue.RunAsync($"t{t}", name, async (n, _) =>
                {
                    var now = Interlocked.Increment(ref running);
                    InterlockedMax(ref maxRunning, now);
                    await Task.Yield();
                    ran.AddOrUpdate(n, 1, (_, c) => c + 1);
                    Interlocked.Decrement(ref running);
                    return 0;
                }, CancellationToken.None).AsTask());
            }
        }

        await Task.WhenAll(calls).WaitAsync(Timeout);

        Assert.Equal(1000, ran.Count);
        Assert.All(ran.Values, count => Assert.Equal(1, count));
        Assert.InRange(maxRunning, 1, 4);
        Assert.Equal(0, queue.InFlight);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current && Interlocked.CompareExchange(ref target, value, current) != current)
        {
            current = Volatile.Read(ref target);
        }
    }
}
