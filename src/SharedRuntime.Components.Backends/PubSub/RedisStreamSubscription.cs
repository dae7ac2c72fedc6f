using System.Collections.Concurrent;
using StackExchange.Redis;

namespace SharedRuntime.Components.PubSub;

/// <summary>
/// One consumer of a stream's consumer group. A single pump takes free handler slots, fills them first with pending
/// messages due for redelivery (XAUTOCLAIM, when <c>redeliverInterval</c> has come round) and then with new ones
/// (XREADGROUP <c>&gt;</c>), and starts one handler call per message. Reads do not block on the server: the
/// connection is shared, so an empty read waits <c>pollInterval</c> instead.
/// </summary>
internal sealed class RedisStreamSubscription : IAsyncDisposable
{
    private static readonly TimeSpan FailureBackoff = TimeSpan.FromSeconds(1);
    private readonly RedisStreamsBroker _broker;
    private readonly RedisKey _stream;
    private readonly string _topic;
    private readonly string _group;
    private readonly string _consumer;
    private readonly Func<ReceivedMessage, CancellationToken, ValueTask<DeliveryOutcome>> _handler;
    private readonly HandlerSlots _slots;
    private readonly ConcurrentDictionary<string, byte> _inFlight = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private RedisValue _claimCursor = "0-0";
    private DateTimeOffset _nextClaim;
    private Task _pump = Task.CompletedTask;

    public RedisStreamSubscription(RedisStreamsBroker broker, string topic, string group, string consumer, int limit,
        Func<ReceivedMessage, CancellationToken, ValueTask<DeliveryOutcome>> handler)
    {
        _broker = broker;
        _stream = topic;
        _topic = topic;
        _group = group;
        _consumer = consumer;
        _handler = handler;
        _slots = new HandlerSlots(limit);
    }

    private RedisPubSubOptions Options => _broker.Options;

    /// <summary>XGROUP CREATE topic group $ MKSTREAM; an existing group keeps its position.</summary>
    public async Task EnsureGroupAsync()
    {
        try
        {
            await _broker.Database.StreamCreateConsumerGroupAsync(_stream, _group, StreamPosition.NewMessages, createStream: true).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal))
        {
            // Created earlier, by this runtime or a previous one.
        }
    }

    public void Start()
    {
        // Claim at once: pending messages of a runtime that stopped are due as soon as they are idle long enough.
        _nextClaim = _broker.Time.GetUtcNow();
        _pump = Task.Run(PumpAsync);
    }

    private async Task PumpAsync()
    {
        var token = _stop.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                await _slots.WaitAsync(token).ConfigureAwait(false);
                var free = 1;
                while (free < Math.Min(_slots.Limit, Options.QueueDepth) && _slots.TryTake())
                {
                    free++;
                }
                var started = 0;
                try
                {
                    started = await FillAsync(free, token).ConfigureAwait(false);
                }
                finally
                {
                    if (free > started)
                    {
                        _slots.Release(free - started);
                    }
                }
                if (started == 0)
                {
                    await Task.Delay(Options.PollInterval, _broker.Time, token).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
            {
                BackendsLog.RedisStreamReadFailed(_broker.Logger, _topic, _group, ex);
                if (ex.Message.Contains("NOGROUP", StringComparison.Ordinal))
                {
                    // The server lost the group (restarted without persistence): start again from its end.
                    await IgnoreFailureAsync(EnsureGroupAsync()).ConfigureAwait(false);
                }
                await IgnoreFailureAsync(Task.Delay(FailureBackoff, _broker.Time, token)).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Starts up to <paramref name="free"/> deliveries: messages due for redelivery first, then new ones.</summary>
    private async Task<int> FillAsync(int free, CancellationToken token)
    {
        var started = 0;
        if (Options.RedeliverInterval > TimeSpan.Zero && _broker.Time.GetUtcNow() >= _nextClaim)
        {
            started = await ClaimAsync(free, token).ConfigureAwait(false);
        }
        if (started < free)
        {
            var entries = await _broker.Database.StreamReadGroupAsync(_stream, _group, _consumer, StreamPosition.NewMessages, free - started).ConfigureAwait(false);
            foreach (var entry in entries)
            {
                started += StartDelivery(entry, attempt: 1, token) ? 1 : 0;
            }
        }
        return started;
    }

    private async Task<int> ClaimAsync(int count, CancellationToken token)
    {
        var db = _broker.Database;
        var result = await db.StreamAutoClaimAsync(_stream, _group, _consumer, (long)Options.ProcessingTimeout.TotalMilliseconds, _claimCursor, count).ConfigureAwait(false);
        _claimCursor = result.NextStartId;
        if (_claimCursor == "0-0")
        {
            // The whole pending list was scanned: look again after redeliverInterval.
            _nextClaim = _broker.Time.GetUtcNow() + Options.RedeliverInterval;
        }
        var claimed = result.ClaimedEntries.Where(e => !e.IsNull).ToArray();
        if (claimed.Length == 0)
        {
            return 0;
        }
        var attempts = await DeliveryCountsAsync(db, claimed).ConfigureAwait(false);
        var started = 0;
        List<RedisValue>? exhausted = null;
        foreach (var entry in claimed)
        {
            var attempt = attempts.TryGetValue(entry.Id!, out var delivered) ? delivered : 2;
            if (attempt > _broker.MaxDeliveryAttempts)
            {
                // Delivered as often as allowed (the last answer was Retry, or the runtime stopped during it): it ends here.
                PubSubLog.AttemptsExhausted(_broker.Logger, _group, _topic, attempt - 1);
                (exhausted ??= []).Add(entry.Id);
                continue;
            }
            started += StartDelivery(entry, attempt, token) ? 1 : 0;
        }
        if (exhausted is not null)
        {
            await db.StreamAcknowledgeAsync(_stream, _group, [.. exhausted]).ConfigureAwait(false);
        }
        return started;
    }

    /// <summary>How often each claimed entry has been delivered, claims included (XPENDING of this consumer).</summary>
    private async Task<Dictionary<string, int>> DeliveryCountsAsync(IDatabase db, StreamEntry[] claimed)
    {
        var ids = claimed.Select(e => (string)e.Id!).ToArray();
        var pending = await db.StreamPendingMessagesAsync(_stream, _group, claimed.Length + _inFlight.Count, _consumer,
            ids.Min(StreamIds.Comparer), ids.Max(StreamIds.Comparer)).ConfigureAwait(false);
        return pending.ToDictionary(p => (string)p.MessageId!, p => p.DeliveryCount, StringComparer.Ordinal);
    }

    /// <summary>Starts one delivery on a slot the caller holds; false (slot still the caller's) when it is already being handled here.</summary>
    private bool StartDelivery(StreamEntry entry, int attempt, CancellationToken token)
    {
        var id = (string)entry.Id!;
        if (!_inFlight.TryAdd(id, 0))
        {
            return false;
        }
        _ = DeliverAsync(id, RedisStreamsBroker.ToReceived(_topic, entry, attempt), token);
        return true;
    }

    private async Task DeliverAsync(string id, ReceivedMessage message, CancellationToken token)
    {
        try
        {
            DeliveryOutcome outcome;
            try
            {
                outcome = await _handler(message, token).ConfigureAwait(false);
            }
            catch (Exception)
            {
                outcome = DeliveryOutcome.Retry;
            }
            if (outcome is DeliveryOutcome.Success or DeliveryOutcome.Drop)
            {
                try
                {
                    await _broker.Database.StreamAcknowledgeAsync(_stream, _group, id).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException or ComponentException)
                {
                    // Still pending: it is delivered again after processingTimeout (at least once).
                    BackendsLog.RedisStreamAckFailed(_broker.Logger, _topic, _group, ex);
                }
            }
            // Retry: the entry stays pending and is claimed again once idle for processingTimeout.
        }
        finally
        {
            _inFlight.TryRemove(id, out _);
            _slots.Release();
        }
    }

    private static async Task IgnoreFailureAsync(Task task)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    /// <summary>
    /// Stops pulling, then waits (a few seconds at most) for the handler calls still running, which see the stop, so
    /// their acks reach the server while the connection is still open.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _pump.ConfigureAwait(false);
        await _slots.DrainAsync(_broker.Time).ConfigureAwait(false);
        _stop.Dispose();
    }
}
