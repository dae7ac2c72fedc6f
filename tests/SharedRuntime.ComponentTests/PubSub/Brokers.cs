using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;

namespace SharedRuntime.ComponentTests.PubSub;

/// <summary>Builds brokers the way the runtime does: through the registered component factories.</summary>
internal static class Brokers
{
    private static readonly ServiceProvider Services = new ServiceCollection()
        .AddLogging()
        .AddEmbeddedComponents()
        .AddBackendComponents()
        .BuildServiceProvider();

    public static async Task<IPubSubBroker> CreateAsync(string type, IReadOnlyDictionary<string, string> metadata)
    {
        var factory = Services.GetServices<IComponentFactory>().Single(f => f.Types.Contains(type));
        var broker = (IPubSubBroker)factory.Create(new ComponentContext
        {
            Name = "pubsub",
            Type = type,
            Version = "v1",
            Metadata = metadata,
            Services = Services,
        });
        await broker.InitAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        return broker;
    }
}

/// <summary>
/// A subscriber for tests: answers each message with <see cref="Answer"/> and hands every delivery to the test
/// through a channel, so the test waits for deliveries instead of sleeping.
/// </summary>
internal sealed class Recorder
{
    private readonly Channel<ReceivedMessage> _received = Channel.CreateUnbounded<ReceivedMessage>();
    private int _running;
    private int _maxRunning;

    public Func<ReceivedMessage, CancellationToken, Task<DeliveryOutcome>> Answer { get; set; } = static (_, _) => Task.FromResult(DeliveryOutcome.Success);

    public ConcurrentBag<ReceivedMessage> All { get; } = [];

    /// <summary>Most handler calls that ran at once.</summary>
    public int MaxRunning => Volatile.Read(ref _maxRunning);

    public int Running => Volatile.Read(ref _running);

    public async ValueTask<DeliveryOutcome> HandleAsync(ReceivedMessage message, CancellationToken cancellationToken)
    {
        var running = Interlocked.Increment(ref _running);
        InterlockedMax(ref _maxRunning, running);
        All.Add(message);
        _received.Writer.TryWrite(message);
        try
        {
            return await Answer(message, cancellationToken);
        }
        finally
        {
            Interlocked.Decrement(ref _running);
        }
    }

    /// <summary>The next delivery; fails the test when none arrives within <paramref name="timeout"/>.</summary>
    public async Task<ReceivedMessage> NextAsync(TimeSpan? timeout = null) =>
        await _received.Reader.ReadAsync().AsTask().WaitAsync(timeout ?? TimeSpan.FromSeconds(15));

    public async Task<List<ReceivedMessage>> NextAsync(int count)
    {
        var messages = new List<ReceivedMessage>();
        for (var i = 0; i < count; i++)
        {
            messages.Add(await NextAsync());
        }
        return messages;
    }

    /// <summary>True when nothing is delivered for <paramref name="quiet"/> (how long a redelivery would take at most).</summary>
    public async Task<bool> StaysQuietAsync(TimeSpan quiet)
    {
        try
        {
            await _received.Reader.WaitToReadAsync().AsTask().WaitAsync(quiet);
            return false;
        }
        catch (TimeoutException)
        {
            return true;
        }
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }
            current = seen;
        }
    }
}
