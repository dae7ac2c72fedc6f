using System.Text;
using SharedRuntime.ComponentTests.Servers;
using SharedRuntime.ComponentTests.State;
using StackExchange.Redis;

namespace SharedRuntime.ComponentTests.PubSub;

/// <summary>
/// What a publisher cannot grow or break on a Redis server: streams are trimmed (MAXLEN), a topic never takes a state
/// entry's key, a key of another type under a topic's name is the publisher's error, and an entry that cannot be read
/// is handed on marked as such instead of stopping the subscription.
/// </summary>
public sealed class RedisStreamsBoundsTests(RedisServer server) : IClassFixture<RedisServer>, IAsyncLifetime
{
    private readonly string _topic = "b" + Guid.NewGuid().ToString("N");
    private readonly List<IAsyncDisposable> _owned = [];
    private ConnectionMultiplexer? _redis;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var owned in _owned)
        {
            await owned.DisposeAsync();
        }
        _redis?.Dispose();
    }

    private async Task<IPubSubBroker> BrokerAsync(Dictionary<string, string>? metadata = null)
    {
        TestServers.Require("redis-server", server.Missing);
        var all = new Dictionary<string, string> { ["redisHost"] = server.Host, ["pollInterval"] = "20ms" };
        foreach (var (key, value) in metadata ?? [])
        {
            all[key] = value;
        }
        var broker = await Brokers.CreateAsync("pubsub.redis", all);
        _owned.Add(broker);
        return broker;
    }

    private async Task<IDatabase> RedisAsync()
    {
        _redis ??= await ConnectionMultiplexer.ConnectAsync(server.Host);
        return _redis.GetDatabase();
    }

    private static Task PublishAsync(IPubSubBroker broker, string topic, string text) =>
        broker.PublishAsync(new PubSubMessage(topic, Encoding.UTF8.GetBytes(text), "text/plain", new Dictionary<string, string>()) { PublisherAppId = "app-a" }, default).AsTask().WaitAsync(Within.Limit);

    [SkippableFact]
    public async Task A_stream_is_trimmed_to_about_maxLenApprox_entries_and_to_10000_by_default()
    {
        var trimmed = await BrokerAsync(new() { ["maxLenApprox"] = "100" });
        for (var i = 0; i < 1000; i++)
        {
            await PublishAsync(trimmed, _topic, $"m{i}");
        }
        var db = await RedisAsync();
        var length = await db.StreamLengthAsync(_topic);
        // "~" trims whole radix-tree nodes (100 entries each by default): about the bound, never the whole history.
        Assert.InRange(length, 100, 300);

        var byDefault = await BrokerAsync();
        for (var batch = 0; batch < 25; batch++)
        {
            await Task.WhenAll(Enumerable.Range(0, 500).Select(i => PublishAsync(byDefault, _topic + "-default", $"m{batch}-{i}")));
        }
        Assert.InRange(await db.StreamLengthAsync(_topic + "-default"), 10_000, 10_200); // of 12,500 published
    }

    [SkippableFact]
    public async Task A_topic_named_like_a_key_of_another_type_is_the_publishers_error_not_a_backend_failure()
    {
        var broker = await BrokerAsync();
        var db = await RedisAsync();
        var key = "bystander-key-" + Guid.NewGuid().ToString("N");
        await db.HashSetAsync(key, "data", "bystander's value");

        var refused = await Assert.ThrowsAsync<PubSubMessageRejectedException>(() => PublishAsync(broker, key, "attack"));
        Assert.Contains("WRONGTYPE", refused.Message, StringComparison.Ordinal);
        Assert.IsNotType<ComponentException>(refused); // never counted against a backend breaker
        Assert.Equal("bystander's value", (string?)await db.HashGetAsync(key, "data"));
    }

    [SkippableFact]
    public async Task A_topic_containing_the_state_key_separator_never_reaches_the_server()
    {
        var broker = await BrokerAsync();
        await Assert.ThrowsAsync<PubSubMessageRejectedException>(() => PublishAsync(broker, "bystander||orders", "attack"));
        await Assert.ThrowsAsync<PubSubMessageRejectedException>(() => broker.SubscribeAsync("bystander||orders", "attacker", 1, static (_, _) => ValueTask.FromResult(DeliveryOutcome.Success), default).AsTask());
        Assert.False(await (await RedisAsync()).KeyExistsAsync("bystander||orders"));
    }

    [SkippableFact]
    public async Task An_entry_that_cannot_be_read_is_handed_on_marked_and_the_subscription_goes_on()
    {
        var broker = await BrokerAsync();
        var recorder = new Recorder();
        await using var subscription = await broker.SubscribeAsync(_topic, "app-a", 4, recorder.HandleAsync, default).AsTask().WaitAsync(Within.Limit);
        var db = await RedisAsync();
        await db.StreamAddAsync(_topic, [new("data", "x"), new("contentType", "text/plain"), new("metadata", "{not json")]);
        await PublishAsync(broker, _topic, "fine");

        var messages = await recorder.NextAsync(2);
        Assert.Contains("metadata", messages.Single(m => Encoding.UTF8.GetString(m.Data.Span) == "x").Undecodable, StringComparison.Ordinal);
        Assert.Null(messages.Single(m => Encoding.UTF8.GetString(m.Data.Span) == "fine").Undecodable);
    }
}

/// <summary>What a publisher cannot grow on a NATS server: the stream's subjects are bounded; an oversized event is its own error.</summary>
public sealed class JetStreamBoundsTests(NatsServer server) : IClassFixture<NatsServer>, IAsyncLifetime
{
    private readonly List<IAsyncDisposable> _owned = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var owned in _owned)
        {
            await owned.DisposeAsync();
        }
    }

    private async Task<IPubSubBroker> BrokerAsync(string stream, Dictionary<string, string>? metadata = null)
    {
        TestServers.Require("nats-server", server.Missing);
        var all = new Dictionary<string, string> { ["natsURL"] = server.Url, ["streamName"] = stream };
        foreach (var (key, value) in metadata ?? [])
        {
            all[key] = value;
        }
        var broker = await Brokers.CreateAsync("pubsub.jetstream", all);
        _owned.Add(broker);
        return broker;
    }

    private static Task PublishAsync(IPubSubBroker broker, string topic, byte[] data) =>
        broker.PublishAsync(new PubSubMessage(topic, data, "text/plain", new Dictionary<string, string>()) { PublisherAppId = "app-a" }, default).AsTask().WaitAsync(Within.Limit);

    [SkippableFact]
    public async Task Topics_beyond_maxSubjects_are_refused_and_known_ones_still_work()
    {
        var broker = await BrokerAsync("bounded" + Guid.NewGuid().ToString("N")[..8], new() { ["maxSubjects"] = "2" });
        await PublishAsync(broker, "s1", [1]);
        await PublishAsync(broker, "s2", [2]);

        var refused = await Assert.ThrowsAsync<PubSubLimitException>(() => PublishAsync(broker, "s3", [3]));
        Assert.Equal(PubSubLimit.TopicsExceeded, refused.Limit);
        await PublishAsync(broker, "s1", [4]);
    }

    [SkippableFact]
    public async Task An_event_larger_than_the_server_takes_is_the_publishers_error()
    {
        var broker = await BrokerAsync("large" + Guid.NewGuid().ToString("N")[..8]);
        await Assert.ThrowsAsync<PubSubMessageRejectedException>(() => PublishAsync(broker, "big", new byte[8 * 1024 * 1024]));
        await Assert.ThrowsAsync<PubSubMessageRejectedException>(() => PublishAsync(broker, "bad subject", [1]));
    }
}
