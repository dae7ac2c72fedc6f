using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.Channels;

namespace SharedRuntime.Components.PubSub;

/// <summary>
/// <c>pubsub.in-memory</c>: every consumer group of a topic gets every message published after the group first
/// subscribed. A message leaves its group only when the handler answers Success or Drop; Retry or an exception brings
/// it back after <c>redeliveryDelay</c>. Each group holds at most <c>maxMessagesPerTopic</c> messages; beyond that,
/// publishing fails instead of growing memory without bound.
/// </summary>
internal sealed class InMemoryBroker : IPubSubBroker
{
    private readonly TimeProvider _time;
    private readonly TimeSpan _redeliveryDelay;
    private readonly int _maxMessages;
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, Group>> _topics = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _disposed = new();

    public InMemoryBroker(ComponentContext context, TimeProvider time)
    {
        _time = time;
        _redeliveryDelay = TimeSpan.FromSeconds(1);
        if (context.GetMetadata("redeliveryDelay") is { } delayText)
        {
            _redeliveryDelay = SharedRuntime.Configuration.Durations.TryParse(delayText, out var delay) ? delay : throw new ComponentException($"redeliveryDelay '{delayText}' is not a duration");
        }
        _maxMessages = 10_000;
        if (context.GetMetadata("maxMessagesPerTopic") is { } maxText)
        {
            _maxMessages = int.TryParse(maxText, NumberStyles.Integer, CultureInfo.InvariantCulture, out var max) && max > 0
                ? max
                : throw new ComponentException($"maxMessagesPerTopic '{maxText}' is not a positive whole number");
        }
    }

    public IReadOnlyList<string> Capabilities { get; } = [];

    public ValueTask InitAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask PublishAsync(PubSubMessage message, CancellationToken cancellationToken)
    {
        if (!_topics.TryGetValue(message.Topic, out var groups))
        {
            return ValueTask.CompletedTask;
        }
        var snapshot = groups.Values.ToArray();
        foreach (var group in snapshot)
        {
            if (!group.TryReserve(_maxMessages))
            {
                foreach (var reserved in snapshot.TakeWhile(g => g != group))
                {
                    reserved.Release();
                }
                throw new ComponentException($"topic {message.Topic} holds {_maxMessages} undelivered messages for consumer group {group.Name}, its limit");
            }
        }
        foreach (var group in snapshot)
        {
            group.Queue.Writer.TryWrite(new Pending(message, 1));
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Messages of <paramref name="topic"/> that <paramref name="consumerGroup"/> has not acknowledged yet: queued, being
    /// delivered, or waiting to be delivered again. Zero means nothing of the topic can reach the group again.
    /// </summary>
    internal int Unacknowledged(string topic, string consumerGroup) =>
        _topics.TryGetValue(topic, out var groups) && groups.TryGetValue(consumerGroup, out var group) ? group.Held : 0;

    public ValueTask<IAsyncDisposable> SubscribeAsync(string topic, string consumerGroup, int maxInFlight,
        Func<ReceivedMessage, CancellationToken, ValueTask<DeliveryOutcome>> handler, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxInFlight, 1);
        var group = _topics.GetOrAdd(topic, _ => new(StringComparer.Ordinal)).GetOrAdd(consumerGroup, name => new Group(name));
        var subscription = new Subscription(this, group, maxInFlight, handler);
        return ValueTask.FromResult<IAsyncDisposable>(subscription);
    }

    private sealed record Pending(PubSubMessage Message, int Attempt);

    private sealed class Group(string name)
    {
        private int _held;

        public string Name { get; } = name;

        public Channel<Pending> Queue { get; } = Channel.CreateUnbounded<Pending>();

        public bool TryReserve(int max)
        {
            while (true)
            {
                var held = Volatile.Read(ref _held);
                if (held >= max)
                {
                    return false;
                }
                if (Interlocked.CompareExchange(ref _held, held + 1, held) == held)
                {
                    return true;
                }
            }
        }

        public void Release() => Interlocked.Decrement(ref _held);

        public int Held => Volatile.Read(ref _held);
    }

    private sealed class Subscription : IAsyncDisposable
    {
        private readonly InMemoryBroker _broker;
        private readonly Group _group;
        private readonly Func<ReceivedMessage, CancellationToken, ValueTask<DeliveryOutcome>> _handler;
        private readonly SemaphoreSlim _slots;
        private readonly CancellationTokenSource _stop;
        private readonly Task _pump;
        private int _running;

        public Subscription(InMemoryBroker broker, Group group, int maxInFlight, Func<ReceivedMessage, CancellationToken, ValueTask<DeliveryOutcome>> handler)
        {
            _broker = broker;
            _group = group;
            _handler = handler;
            _slots = new SemaphoreSlim(maxInFlight, maxInFlight);
            _stop = CancellationTokenSource.CreateLinkedTokenSource(broker._disposed.Token);
            _pump = Task.Run(PumpAsync);
        }

        private async Task PumpAsync()
        {
            var token = _stop.Token;
            try
            {
                while (true)
                {
                    await _slots.WaitAsync(token).ConfigureAwait(false);
                    Pending pending;
                    try
                    {
                        pending = await _group.Queue.Reader.ReadAsync(token).ConfigureAwait(false);
                    }
                    catch
                    {
                        _slots.Release();
                        throw;
                    }
                    Interlocked.Increment(ref _running);
                    _ = DeliverAsync(pending, token);
                }
            }
            catch (OperationCanceledException)
            {
                // Stopped: what is left stays in the group's queue.
            }
        }

        private async Task DeliverAsync(Pending pending, CancellationToken token)
        {
            DeliveryOutcome outcome;
            try
            {
                var message = pending.Message;
                outcome = await _handler(new ReceivedMessage(message.Topic, message.Data, message.ContentType, message.Metadata, pending.Attempt), token).ConfigureAwait(false);
            }
            catch (Exception)
            {
                outcome = DeliveryOutcome.Retry;
            }
            finally
            {
                _slots.Release();
                Interlocked.Decrement(ref _running);
            }
            if (outcome is DeliveryOutcome.Success or DeliveryOutcome.Drop)
            {
                _group.Release();
                return;
            }
            var next = pending with { Attempt = pending.Attempt + 1 };
            if (token.IsCancellationRequested)
            {
                _group.Queue.Writer.TryWrite(next);
                return;
            }
            try
            {
                await Task.Delay(_broker._redeliveryDelay, _broker._time, _broker._disposed.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            _group.Queue.Writer.TryWrite(next);
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync().ConfigureAwait(false);
            await _pump.ConfigureAwait(false);
            _stop.Dispose();
        }
    }

    public ValueTask DisposeAsync()
    {
        _disposed.Cancel();
        return ValueTask.CompletedTask;
    }
}
