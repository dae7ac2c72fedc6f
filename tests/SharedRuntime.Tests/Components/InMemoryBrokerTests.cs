using System.Text;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.Components;

namespace SharedRuntime.Tests.Components;

/// <summary>The in-memory broker's delivery guarantees: every group gets every message, nothing is lost on failure.</summary>
public sealed class InMemoryBrokerTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private IPubSubBroker _broker = null!;

    public async Task InitializeAsync()
    {
        var services = new ServiceCollection().AddEmbeddedComponents().BuildServiceProvider();
        var factory = services.GetServices<IComponentFactory>().Single(f => f.Types.Contains("pubsub.in-memory"));
        _broker = (IPubSubBroker)factory.Create(new ComponentContext
        {
            Name = "pubsub",
            Type = "pubsub.in-memory",
            Version = "v1",
            Metadata = new Dictionary<string, string> { ["redeliveryDelay"] = "10ms", ["maxMessagesPerTopic"] = "3" },
            Services = services,
        });
        await _broker.InitAsync(CancellationToken.None);
    }

    public async Task DisposeAsync() => await _broker.DisposeAsync();

    private ValueTask Publish(string topic, string text) =>
        _broker.PublishAsync(new PubSubMessage(topic, Encoding.UTF8.GetBytes(text), "text/plain", new Dictionary<string, string>()), CancellationToken.None);

    [Fact]
    public async Task EveryGroupReceivesEveryMessage()
    {
        var a = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var b = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var subA = await _broker.SubscribeAsync("t", "group-a", 1, (m, _) => { a.TrySetResult(Encoding.UTF8.GetString(m.Data.Span)); return ValueTask.FromResult(DeliveryOutcome.Success); }, CancellationToken.None);
        await using var subB = await _broker.SubscribeAsync("t", "group-b", 1, (m, _) => { b.TrySetResult(Encoding.UTF8.GetString(m.Data.Span)); return ValueTask.FromResult(DeliveryOutcome.Success); }, CancellationToken.None);
        await Publish("t", "hello");
        Assert.Equal("hello", await a.Task.WaitAsync(Timeout));
        Assert.Equal("hello", await b.Task.WaitAsync(Timeout));
    }

    [Fact]
    public async Task RetryAndExceptionsRedeliverWithTheAttemptCounted()
    {
        var attempts = new List<int>();
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var sub = await _broker.SubscribeAsync("retry", "g", 1, (m, _) =>
        {
            lock (attempts)
            {
                attempts.Add(m.Attempt);
            }
            return m.Attempt switch
            {
                1 => ValueTask.FromResult(DeliveryOutcome.Retry),
                2 => throw new InvalidOperationException("handler failed"),
                _ => Done(),
            };
            ValueTask<DeliveryOutcome> Done()
            {
                done.TrySetResult();
                return ValueTask.FromResult(DeliveryOutcome.Success);
            }
        }, CancellationToken.None);
        await Publish("retry", "x");
        await done.Task.WaitAsync(Timeout);
        Assert.Equal([1, 2, 3], attempts);
    }

    [Fact]
    public async Task AHungGroupDoesNotDelayAnotherGroup()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var other = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var hung = await _broker.SubscribeAsync("h", "hung", 1, async (_, _) => { await release.Task; return DeliveryOutcome.Success; }, CancellationToken.None);
        await using var fine = await _broker.SubscribeAsync("h", "fine", 1, (_, _) => { other.TrySetResult(); return ValueTask.FromResult(DeliveryOutcome.Success); }, CancellationToken.None);
        await Publish("h", "1");
        await other.Task.WaitAsync(Timeout);
        release.SetResult();
    }

    [Fact]
    public async Task UndeliveredMessagesAreBoundedAndKeptForTheNextSubscriberOfTheGroup()
    {
        var first = await _broker.SubscribeAsync("bounded", "g", 1, (_, _) => ValueTask.FromResult(DeliveryOutcome.Success), CancellationToken.None);
        await first.DisposeAsync();
        await Publish("bounded", "1");
        await Publish("bounded", "2");
        await Publish("bounded", "3");
        await Assert.ThrowsAsync<PubSubLimitException>(() => Publish("bounded", "4").AsTask());

        var received = new List<string>();
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var second = await _broker.SubscribeAsync("bounded", "g", 1, (m, _) =>
        {
            lock (received)
            {
                received.Add(Encoding.UTF8.GetString(m.Data.Span));
                if (received.Count == 3)
                {
                    all.TrySetResult();
                }
            }
            return ValueTask.FromResult(DeliveryOutcome.Success);
        }, CancellationToken.None);
        await all.Task.WaitAsync(Timeout);
        Assert.Equal(["1", "2", "3"], received);
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                await Publish("bounded", "5");
                return true;
            }
            catch (PubSubLimitException)
            {
                return false;
            }
        }, Timeout);
    }

    [Fact]
    public async Task AtMostMaxInFlightHandlersRunAtOnce()
    {
        var running = 0;
        var peak = 0;
        var handled = 0;
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var sub = await _broker.SubscribeAsync("par", "g", 2, async (_, _) =>
        {
            var now = Interlocked.Increment(ref running);
            InterlockedMax(ref peak, now);
            await Task.Yield();
            await Task.Delay(20);
            Interlocked.Decrement(ref running);
            if (Interlocked.Increment(ref handled) == 3)
            {
                all.TrySetResult();
            }
            return DeliveryOutcome.Success;
        }, CancellationToken.None);
        for (var i = 0; i < 3; i++)
        {
            await Publish("par", $"{i}");
        }
        await all.Task.WaitAsync(Timeout);
        Assert.InRange(peak, 1, 2);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}
