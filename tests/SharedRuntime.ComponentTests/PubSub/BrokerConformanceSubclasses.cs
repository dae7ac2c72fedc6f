using SharedRuntime.ComponentTests.Servers;

namespace SharedRuntime.ComponentTests.PubSub;

public sealed class InMemoryBrokerConformanceTests : PubSubBrokerConformanceTests
{
    protected override TimeSpan RedeliveryWait => TimeSpan.FromMilliseconds(500);

    protected override Task<IPubSubBroker> CreateBrokerAsync() =>
        Brokers.CreateAsync("pubsub.in-memory", new Dictionary<string, string> { ["redeliveryDelay"] = "100ms", ["maxDeliveryAttempts"] = "3" });

    /// <summary>Messages live in the process: a "restart" keeps the same broker, as only subscriptions stop.</summary>
    protected override Task<IPubSubBroker> RestartAsync(IPubSubBroker broker) => Task.FromResult(broker);
}

public sealed class RedisBrokerConformanceTests(RedisServer server) : PubSubBrokerConformanceTests, IClassFixture<RedisServer>
{
    protected override TimeSpan RedeliveryWait => TimeSpan.FromMilliseconds(1000);

    protected override Task<IPubSubBroker> CreateBrokerAsync()
    {
        TestServers.Require("redis-server", server.Missing);
        return Brokers.CreateAsync("pubsub.redis", new Dictionary<string, string>
        {
            ["redisHost"] = server.Host,
            ["processingTimeout"] = "300ms",
            ["redeliverInterval"] = "100ms",
            ["pollInterval"] = "20ms",
            ["maxDeliveryAttempts"] = "3",
        });
    }
}

public sealed class JetStreamBrokerConformanceTests(NatsServer server) : PubSubBrokerConformanceTests, IClassFixture<NatsServer>
{
    protected override TimeSpan RedeliveryWait => TimeSpan.FromMilliseconds(1500);

    /// <summary>
    /// The count is the server's. nats-server 2.9 has reported a first delivery (once in CI, not in 15 local runs) for a
    /// message nak'd while its consumer's pull requests were ending; the message still comes, which the test asserts.
    /// </summary>
    protected override bool CountsAttemptsAcrossRestart => false;

    protected override Task<IPubSubBroker> CreateBrokerAsync()
    {
        TestServers.Require("nats-server", server.Missing);
        return Brokers.CreateAsync("pubsub.jetstream", new Dictionary<string, string>
        {
            ["natsURL"] = server.Url,
            ["streamName"] = "conformance",
            ["ackWait"] = "2s",
            ["nakDelay"] = "100ms",
            ["maxDeliver"] = "3",
        });
    }
}
