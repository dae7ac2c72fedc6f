using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SharedRuntime.Metrics;

namespace SharedRuntime.Components.PubSub;

/// <summary>
/// <c>pubsub.in-memory</c>: every consumer group of a topic gets every message published after the group first
/// subscribed. A message leaves its group only when the handler answers Success or Drop; Retry or an exception brings
/// it back after <c>redeliveryDelay</c>, up to <c>maxDeliveryAttempts</c> deliveries in all (default 10), after which
/// it is dropped. What waits for a group is bounded in count and bytes: <c>maxMessagesPerTopic</c> (default 10,000)
/// and <c>maxBytesPerTopic</c> (default 16 MiB) per group, <c>maxBytesPerApp</c> (default 32 MiB) across the topics of
/// one group (one subscribing app), and <c>maxBytes</c> (default 128 MiB) across the broker. A publisher whose own
/// group is full is refused (<see cref="PubSubLimitException"/>), as is any message that names no publisher; another
/// app's full group does not get the message (logged and counted), so a subscriber that never answers cannot stop
/// others from publishing.
/// </summary>
internal sealed partial class InMemoryBroker : IPubSubBroker
{
    public const int DefaultMaxMessagesPerTopic = 10_000;
    public const long DefaultMaxBytesPerTopic = 16L * 1024 * 1024;
    public const long DefaultMaxBytesPerApp = 32L * 1024 * 1024;
    public const long DefaultMaxBytes = 128L * 1024 * 1024;

    /// <summary>The most any byte bound may be set to: the broker lives in the runtime's memory, shared by every tenant.</summary>
    public const long MaxBytesCeiling = 256L * 1024 * 1024;
    private const int MaxMessagesCeiling = 1_000_000;

    private readonly string _name;
    private readonly TimeProvider _time;
    private readonly TimeSpan _redeliveryDelay;
    private readonly int _maxMessages;
    private readonly long _maxBytesPerTopic;
    private readonly long _maxBytesPerApp;
    private readonly Budget _total;
    private readonly ConcurrentDictionary<string, Budget> _perApp = new(StringComparer.Ordinal);
    private readonly ILogger _logger;
    private readonly RuntimeMetrics? _metrics;
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, Group>> _topics = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _disposed = new();

    public InMemoryBroker(ComponentContext context, TimeProvider time)
    {
        _name = context.Name;
        _time = time;
        _redeliveryDelay = TimeSpan.FromSeconds(1);
        if (context.GetMetadata("redeliveryDelay") is { } delayText)
        {
            _redeliveryDelay = SharedRuntime.Configuration.Durations.TryParseOrSeconds(delayText, out var delay) ? delay : throw new ComponentException($"redeliveryDelay '{delayText}' is not a duration");
        }
        _maxMessages = (int)Bound(context, "maxMessagesPerTopic", DefaultMaxMessagesPerTopic, MaxMessagesCeiling);
        _maxBytesPerTopic = Bound(context, "maxBytesPerTopic", DefaultMaxBytesPerTopic, MaxBytesCeiling);
        _maxBytesPerApp = Bound(context, "maxBytesPerApp", DefaultMaxBytesPerApp, MaxBytesCeiling);
        _total = new Budget(Bound(context, "maxBytes", DefaultMaxBytes, MaxBytesCeiling));
        MaxDeliveryAttempts = PubSubLimits.MaxDeliveryAttempts(context);
        _logger = context.Services.GetService<ILoggerFactory>()?.CreateLogger<InMemoryBroker>() ?? NullLogger<InMemoryBroker>.Instance;
        _metrics = context.Services.GetService<RuntimeMetrics>();
    }

    private static long Bound(ComponentContext context, string name, long fallback, long ceiling)
    {
        if (context.GetMetadata(name) is not { } text)
        {
            return fallback;
        }
        return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value > 0 && value <= ceiling
            ? value
            : throw new ComponentException($"{name} '{text}' is not a whole number from 1 to {ceiling}");
    }

    public IReadOnlyList<string> Capabilities { get; } = [];

    public int MaxDeliveryAttempts { get; }

    public ValueTask InitAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask PublishAsync(PubSubMessage message, CancellationToken cancellationToken)
    {
        if (!_topics.TryGetValue(message.Topic, out var groups))
        {
            return ValueTask.CompletedTask;
        }
        var size = message.Data.Length + message.ContentType.Length + message.Topic.Length;
        foreach (var (key, value) in message.Metadata)
        {
            size += key.Length + value.Length;
        }
        var snapshot = groups.Values.ToArray();
        var reserved = new List<Group>(snapshot.Length);
        foreach (var group in snapshot)
        {
            if (TryReserve(group, size) is not { } full)
            {
                reserved.Add(group);
                continue;
            }
            if (message.PublisherAppId is null || group.Name == message.PublisherAppId)
            {
                foreach (var taken in reserved)
                {
                    Release(taken, size);
                }
                throw new PubSubLimitException(PubSubLimit.QueueFull, $"topic {message.Topic} holds {full} of undelivered events for the publisher's own subscription, its limit; try again once it has caught up");
            }
            InMemoryBrokerLog.QueueFull(_logger, group.Name, message.Topic, _name, full);
            _metrics?.Delivered(group.Name, _name, "queue_full");
        }
        foreach (var group in reserved)
        {
            group.Queue.Writer.TryWrite(new Pending(message, 1, size));
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>Takes room for one message of <paramref name="size"/> bytes in the group, or says which bound is full.</summary>
    private string? TryReserve(Group group, long size)
    {
        if (!group.Count.TryTake(1))
        {
            return $"{_maxMessages} messages";
        }
        if (!group.Bytes.TryTake(size))
        {
            group.Count.Return(1);
            return $"{_maxBytesPerTopic} bytes";
        }
        var app = AppBudget(group.Name);
        if (!app.TryTake(size))
        {
            group.Count.Return(1);
            group.Bytes.Return(size);
            return $"{_maxBytesPerApp} bytes across the app's topics";
        }
        if (!_total.TryTake(size))
        {
            group.Count.Return(1);
            group.Bytes.Return(size);
            app.Return(size);
            return $"{_total.Limit} bytes across the broker";
        }
        return null;
    }

    private void Release(Group group, long size)
    {
        group.Count.Return(1);
        group.Bytes.Return(size);
        AppBudget(group.Name).Return(size);
        _total.Return(size);
    }

    private Budget AppBudget(string group) => _perApp.GetOrAdd(group, static (_, limit) => new Budget(limit), _maxBytesPerApp);

    /// <summary>
    /// Messages of <paramref name="topic"/> that <paramref name="consumerGroup"/> has not acknowledged yet: queued, being
    /// delivered, or waiting to be delivered again. Zero means nothing of the topic can reach the group again.
    /// </summary>
    internal int Unacknowledged(string topic, string consumerGroup) =>
        _topics.TryGetValue(topic, out var groups) && groups.TryGetValue(consumerGroup, out var group) ? (int)group.Count.Used : 0;

    /// <summary>Bytes held for <paramref name="consumerGroup"/> across every topic.</summary>
    internal long BytesHeldFor(string consumerGroup) => _perApp.TryGetValue(consumerGroup, out var budget) ? budget.Used : 0;

    public ValueTask<IAsyncDisposable> SubscribeAsync(string topic, string consumerGroup, int maxInFlight,
        Func<ReceivedMessage, CancellationToken, ValueTask<DeliveryOutcome>> handler, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxInFlight, 1);
        var group = _topics.GetOrAdd(topic, _ => new(StringComparer.Ordinal)).GetOrAdd(consumerGroup, name => new Group(name, _maxMessages, _maxBytesPerTopic));
        var subscription = new Subscription(this, group, maxInFlight, handler);
        return ValueTask.FromResult<IAsyncDisposable>(subscription);
    }

    private sealed record Pending(PubSubMessage Message, int Attempt, long Size);

    /// <summary>A count with a limit, taken and returned without a lock.</summary>
    private sealed class Budget(long limit)
    {
        private long _used;

        public long Limit { get; } = limit;

        public long Used => Volatile.Read(ref _used);

        public bool TryTake(long amount)
        {
            while (true)
            {
                var used = Volatile.Read(ref _used);
                if (used + amount > Limit)
                {
                    return false;
                }
                if (Interlocked.CompareExchange(ref _used, used + amount, used) == used)
                {
                    return true;
                }
            }
        }

        public void Return(long amount) => Interlocked.Add(ref _used, -amount);
    }

    private sealed class Group(string name, int maxMessages, long maxBytes)
    {
        public string Name { get; } = name;

        public Budget Count { get; } = new(maxMessages);

        public Budget Bytes { get; } = new(maxBytes);

        public Channel<Pending> Queue { get; } = Channel.CreateUnbounded<Pending>();
    }

    private sealed class Subscription : IAsyncDisposable
    {
        private readonly InMemoryBroker _broker;
        private readonly Group _group;
        private readonly Func<ReceivedMessage, CancellationToken, ValueTask<DeliveryOutcome>> _handler;
        private readonly SemaphoreSlim _slots;
        private readonly CancellationTokenSource _stop;
        private readonly Task _pump;

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
                outcome = await _handler(new ReceivedMessage(message.Topic, message.Data, message.ContentType, message.Metadata, pending.Attempt)
                {
                    PublisherAppId = message.PublisherAppId,
                    ExpiresAt = message.ExpiresAt,
                }, token).ConfigureAwait(false);
            }
            catch (Exception)
            {
                outcome = DeliveryOutcome.Retry;
            }
            finally
            {
                _slots.Release();
            }
            if (outcome is DeliveryOutcome.Success or DeliveryOutcome.Drop)
            {
                _broker.Release(_group, pending.Size);
                return;
            }
            if (pending.Attempt >= _broker.MaxDeliveryAttempts && !token.IsCancellationRequested)
            {
                InMemoryBrokerLog.AttemptsExhausted(_broker._logger, _group.Name, pending.Message.Topic, _broker._name, pending.Attempt);
                _broker._metrics?.Delivered(_group.Name, _broker._name, "attempts_exhausted");
                _broker.Release(_group, pending.Size);
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

internal static partial class InMemoryBrokerLog
{
    [LoggerMessage(2240, LogLevel.Warning, "Tenant {AppId}: an event on {Topic} of {PubsubName} was not queued for its subscription, which holds {Limit}, its limit")]
    public static partial void QueueFull(ILogger logger, string appId, string topic, string pubsubName, string limit);

    [LoggerMessage(2241, LogLevel.Warning, "Tenant {AppId}: an event on {Topic} of {PubsubName} was dropped after {Attempts} delivery attempts")]
    public static partial void AttemptsExhausted(ILogger logger, string appId, string topic, string pubsubName, int attempts);
}
