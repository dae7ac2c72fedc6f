using NATS.Client.Core;
using NATS.Client.JetStream;

namespace SharedRuntime.Components.PubSub;

/// <summary>
/// Pulls from one durable consumer and runs at most <c>limit</c> handler calls at once; the server holds the rest
/// back through <c>MaxAckPending</c>. When the connection fails, pulling starts again after a short pause.
/// </summary>
internal sealed class JetStreamSubscription : IAsyncDisposable
{
    private static readonly TimeSpan FailureBackoff = TimeSpan.FromSeconds(1);
    private readonly JetStreamBroker _broker;
    private readonly INatsJSConsumer _consumer;
    private readonly string _topic;
    private readonly string _group;
    private readonly Func<ReceivedMessage, CancellationToken, ValueTask<DeliveryOutcome>> _handler;
    private readonly HandlerSlots _slots;
    private readonly CancellationTokenSource _stop = new();
    private Task _pump = Task.CompletedTask;

    private JetStreamSubscription(JetStreamBroker broker, INatsJSConsumer consumer, string topic, string group, int limit,
        Func<ReceivedMessage, CancellationToken, ValueTask<DeliveryOutcome>> handler)
    {
        _broker = broker;
        _consumer = consumer;
        _topic = topic;
        _group = group;
        _handler = handler;
        _slots = new HandlerSlots(limit);
    }

    public static JetStreamSubscription Start(JetStreamBroker broker, INatsJSConsumer consumer, string topic, string group, int limit,
        Func<ReceivedMessage, CancellationToken, ValueTask<DeliveryOutcome>> handler)
    {
        var subscription = new JetStreamSubscription(broker, consumer, topic, group, limit, handler);
        subscription._pump = Task.Run(subscription.PumpAsync);
        return subscription;
    }

    private async Task PumpAsync()
    {
        var token = _stop.Token;
        var opts = new NatsJSConsumeOpts { MaxMsgs = _slots.Limit };
        while (!token.IsCancellationRequested)
        {
            try
            {
                await foreach (var message in _consumer.ConsumeAsync<byte[]>(opts: opts, cancellationToken: token).ConfigureAwait(false))
                {
                    await _slots.WaitAsync(token).ConfigureAwait(false);
                    _ = DeliverAsync(message, token);
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is NatsException or TimeoutException or ObjectDisposedException)
            {
                BackendsLog.JetStreamConsumeFailed(_broker.Logger, _topic, _group, ex);
                try
                {
                    await Task.Delay(FailureBackoff, _broker.Time, token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
    }

    private async Task DeliverAsync(INatsJSMsg<byte[]> message, CancellationToken token)
    {
        try
        {
            DeliveryOutcome outcome;
            var received = JetStreamBroker.ToReceived(_topic, message);
            try
            {
                outcome = await _handler(received, token).ConfigureAwait(false);
            }
            catch (Exception)
            {
                outcome = DeliveryOutcome.Retry;
            }
            if (outcome == DeliveryOutcome.Retry && received.Attempt >= _broker.MaxDeliveryAttempts && !token.IsCancellationRequested)
            {
                // The server would not deliver it again (MaxDeliver); terminating it frees its MaxAckPending slot at once.
                PubSubLog.AttemptsExhausted(_broker.Logger, _group, _topic, received.Attempt);
                outcome = DeliveryOutcome.Drop;
            }
            try
            {
                await (outcome switch
                {
                    DeliveryOutcome.Success => message.AckAsync(cancellationToken: CancellationToken.None),
                    DeliveryOutcome.Drop => message.AckTerminateAsync(cancellationToken: CancellationToken.None),
                    _ => message.NakAsync(new AckOpts { NakDelay = _broker.Options.NakDelay }, CancellationToken.None),
                }).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NatsException or TimeoutException or ObjectDisposedException)
            {
                // Unanswered: the server delivers it again after ackWait (at least once).
                BackendsLog.JetStreamAckFailed(_broker.Logger, _topic, _group, ex);
            }
        }
        finally
        {
            _slots.Release();
        }
    }

    /// <summary>
    /// Stops pulling, then waits (a few seconds at most) for the handler calls still running, which see the stop, so
    /// their naks reach the server while the connection is still open.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _pump.ConfigureAwait(false);
        await _slots.DrainAsync(_broker.Time).ConfigureAwait(false);
        _stop.Dispose();
    }
}
