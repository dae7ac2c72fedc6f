using SharedRuntime.Components;

namespace SharedRuntime.Tenancy;

/// <summary>
/// A pub/sub component of a Kubernetes namespace: its topics live on the backend as <c>namespace.topic</c>, so two
/// namespaces whose components point at one Redis or NATS never share a stream (and, with consumer groups named by
/// <c>app-id.namespace</c>, never a group). Apps see their topics as they named them.
/// </summary>
internal sealed class NamespacedBroker(IPubSubBroker inner, string @namespace) : IPubSubBroker
{
    private readonly string _prefix = @namespace + ".";

    public IPubSubBroker Inner => inner;

    public int MaxDeliveryAttempts => inner.MaxDeliveryAttempts;

    public IReadOnlyList<string> Capabilities => inner.Capabilities;

    public ValueTask InitAsync(CancellationToken cancellationToken) => inner.InitAsync(cancellationToken);

    public ValueTask PublishAsync(PubSubMessage message, CancellationToken cancellationToken) =>
        inner.PublishAsync(message with { Topic = _prefix + message.Topic }, cancellationToken);

    public ValueTask<IAsyncDisposable> SubscribeAsync(string topic, string consumerGroup, int maxInFlight,
        Func<ReceivedMessage, CancellationToken, ValueTask<DeliveryOutcome>> handler, CancellationToken cancellationToken) =>
        inner.SubscribeAsync(_prefix + topic, consumerGroup, maxInFlight,
            (message, token) => handler(message.Topic.StartsWith(_prefix, StringComparison.Ordinal) ? message with { Topic = message.Topic[_prefix.Length..] } : message, token),
            cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
