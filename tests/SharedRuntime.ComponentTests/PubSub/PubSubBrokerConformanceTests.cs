using System.Text;
using SharedRuntime.ComponentTests.State;

namespace SharedRuntime.ComponentTests.PubSub;

/// <summary>
/// What every broker must do, run against each broker's real server: delivery with data, content type and metadata
/// intact, every consumer group getting every message, one delivery per message within a group, at-least-once
/// redelivery on Retry or after a runtime restart, and the subscriber's in-flight bound; every message ends after a
/// bounded number of deliveries (each broker is made with <c>maxDeliveryAttempts: 3</c>), and the publisher travels
/// apart from the metadata a publisher sends. Each test uses topics of its own.
/// </summary>
public abstract class PubSubBrokerConformanceTests : IAsyncLifetime
{
    private readonly List<IPubSubBroker> _brokers = [];
    private readonly string _topic = "t" + Guid.NewGuid().ToString("N");
    private IPubSubBroker? _broker;
    private string? _skip;

    /// <summary>A broker on the test's server (skips or fails when the server is missing).</summary>
    protected abstract Task<IPubSubBroker> CreateBrokerAsync();

    /// <summary>
    /// The broker a restarted runtime would use: a new instance on the same server. A broker that keeps messages only
    /// in memory answers the same instance (its messages cannot outlive the process).
    /// </summary>
    protected virtual async Task<IPubSubBroker> RestartAsync(IPubSubBroker broker)
    {
        await broker.DisposeAsync();
        _brokers.Remove(broker);
        var next = await CreateBrokerAsync();
        _brokers.Add(next);
        return next;
    }

    /// <summary>
    /// Whether a message in flight at a stop is counted as a second attempt when it comes again. The runtime counts it
    /// itself for in-memory and Redis; a NATS server keeps its own count.
    /// </summary>
    protected virtual bool CountsAttemptsAcrossRestart => true;

    /// <summary>Longer than the broker takes to deliver a message answered Retry again.</summary>
    protected abstract TimeSpan RedeliveryWait { get; }

    public async Task InitializeAsync()
    {
        try
        {
            _broker = await CreateBrokerAsync();
            _brokers.Add(_broker);
        }
        catch (SkipException ex)
        {
            _skip = ex.Message;
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var broker in _brokers)
        {
            await broker.DisposeAsync();
        }
    }

    private IPubSubBroker Ready()
    {
        Skip.If(_skip is not null, _skip);
        return _broker!;
    }

    private static Task<IAsyncDisposable> SubscribeAsync(IPubSubBroker broker, string topic, string group, Recorder recorder, int maxInFlight = 8) =>
        broker.SubscribeAsync(topic, group, maxInFlight, recorder.HandleAsync, default).AsTask().WaitAsync(Within.Limit);

    /// <summary>Every conformance broker is made with this bound.</summary>
    protected const int MaxDeliveryAttempts = 3;

    private static Task PublishAsync(IPubSubBroker broker, string topic, string text, string contentType = "text/plain", IReadOnlyDictionary<string, string>? metadata = null, string? publisher = null) =>
        broker.PublishAsync(new PubSubMessage(topic, Encoding.UTF8.GetBytes(text), contentType, metadata ?? new Dictionary<string, string>()) { PublisherAppId = publisher }, default).AsTask().WaitAsync(Within.Limit);

    private static string Text(ReceivedMessage message) => Encoding.UTF8.GetString(message.Data.Span);

    [SkippableFact]
    public async Task PublishedMessageArrivesWithDataContentTypeAndMetadata()
    {
        var broker = Ready();
        var recorder = new Recorder();
        await using var subscription = await SubscribeAsync(broker, _topic, "app-a", recorder);

        await PublishAsync(broker, _topic, "{\"n\":1}", "application/cloudevents+json", new Dictionary<string, string> { ["traceparent"] = "00-abc-def-01", ["k"] = "v" });

        var message = await recorder.NextAsync();
        Assert.Equal(_topic, message.Topic);
        Assert.Equal("{\"n\":1}", Text(message));
        Assert.Equal("application/cloudevents+json", message.ContentType);
        Assert.Equal("00-abc-def-01", message.Metadata["traceparent"]);
        Assert.Equal("v", message.Metadata["k"]);
        Assert.Equal(1, message.Attempt);
    }

    [SkippableFact]
    public async Task AMessagesExpiryTravelsWithItAndAMessageWithoutOneHasNone()
    {
        var broker = Ready();
        var recorder = new Recorder();
        await using var subscription = await SubscribeAsync(broker, _topic, "app-a", recorder);
        var expiresAt = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeMilliseconds());

        await broker.PublishAsync(new PubSubMessage(_topic, "ttl"u8.ToArray(), "text/plain", new Dictionary<string, string>()) { ExpiresAt = expiresAt }, default)
            .AsTask().WaitAsync(Within.Limit);
        await PublishAsync(broker, _topic, "forever");

        var received = await recorder.NextAsync(2);
        Assert.Equal(expiresAt, received.Single(m => Text(m) == "ttl").ExpiresAt);
        Assert.Null(received.Single(m => Text(m) == "forever").ExpiresAt);
    }

    [SkippableFact]
    public async Task EveryConsumerGroupGetsEveryMessage()
    {
        var broker = Ready();
        var (a, b) = (new Recorder(), new Recorder());
        await using var first = await SubscribeAsync(broker, _topic, "app-a", a);
        await using var second = await SubscribeAsync(broker, _topic, "app-b", b);

        for (var i = 0; i < 5; i++)
        {
            await PublishAsync(broker, _topic, $"m{i}");
        }

        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"m{i}"), (await a.NextAsync(5)).Select(Text).Order());
        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"m{i}"), (await b.NextAsync(5)).Select(Text).Order());
    }

    [SkippableFact]
    public async Task SubscriptionsInOneGroupShareTheMessages()
    {
        var broker = Ready();
        var recorder = new Recorder();
        await using var first = await SubscribeAsync(broker, _topic, "app-a", recorder);
        await using var second = await SubscribeAsync(broker, _topic, "app-a", recorder);

        for (var i = 0; i < 20; i++)
        {
            await PublishAsync(broker, _topic, $"m{i}");
        }

        var received = (await recorder.NextAsync(20)).Select(Text).ToList();
        Assert.Equal(20, received.Distinct().Count());
        Assert.True(await recorder.StaysQuietAsync(RedeliveryWait), "a message was delivered twice within one consumer group");
    }

    [SkippableFact]
    public async Task RetryDeliversTheMessageAgainWithAHigherAttempt()
    {
        var broker = Ready();
        var recorder = new Recorder { Answer = static (m, _) => Task.FromResult(m.Attempt == 1 ? DeliveryOutcome.Retry : DeliveryOutcome.Success) };
        await using var subscription = await SubscribeAsync(broker, _topic, "app-a", recorder);

        await PublishAsync(broker, _topic, "again", metadata: new Dictionary<string, string> { ["k"] = "v" });

        var first = await recorder.NextAsync();
        var second = await recorder.NextAsync();
        Assert.Equal(1, first.Attempt);
        Assert.True(second.Attempt > 1, $"redelivery reported attempt {second.Attempt}");
        Assert.Equal("again", Text(second));
        Assert.Equal("v", second.Metadata["k"]);
        Assert.True(await recorder.StaysQuietAsync(RedeliveryWait), "a message answered Success was delivered again");
    }

    [SkippableFact]
    public async Task HandlerExceptionDeliversTheMessageAgain()
    {
        var broker = Ready();
        var recorder = new Recorder { Answer = static (m, _) => m.Attempt == 1 ? throw new InvalidOperationException("boom") : Task.FromResult(DeliveryOutcome.Success) };
        await using var subscription = await SubscribeAsync(broker, _topic, "app-a", recorder);

        await PublishAsync(broker, _topic, "again");

        Assert.Equal(1, (await recorder.NextAsync()).Attempt);
        Assert.True((await recorder.NextAsync()).Attempt > 1);
    }

    [SkippableFact]
    public async Task SuccessAndDropAreNotDeliveredAgain()
    {
        var broker = Ready();
        var recorder = new Recorder { Answer = static (m, _) => Task.FromResult(Text(m) == "drop" ? DeliveryOutcome.Drop : DeliveryOutcome.Success) };
        await using var subscription = await SubscribeAsync(broker, _topic, "app-a", recorder);

        await PublishAsync(broker, _topic, "drop");
        await PublishAsync(broker, _topic, "keep");

        Assert.Equal(["drop", "keep"], (await recorder.NextAsync(2)).Select(Text).Order());
        Assert.True(await recorder.StaysQuietAsync(RedeliveryWait), "a message answered Success or Drop was delivered again");
    }

    [SkippableFact]
    public async Task NoMoreThanMaxInFlightHandlerCallsRunAtOnce()
    {
        var broker = Ready();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var recorder = new Recorder { Answer = async (_, ct) => { await gate.Task.WaitAsync(ct); return DeliveryOutcome.Success; } };
        await using var subscription = await SubscribeAsync(broker, _topic, "app-a", recorder, maxInFlight: 2);

        for (var i = 0; i < 6; i++)
        {
            await PublishAsync(broker, _topic, $"m{i}");
        }

        await recorder.NextAsync(2);
        Assert.True(await recorder.StaysQuietAsync(TimeSpan.FromMilliseconds(500)), "a third handler call started while two were running");
        Assert.Equal(2, recorder.Running);
        gate.SetResult();
        // At least once: a message held past the broker's ack deadline may come twice; every message must come.
        while (recorder.All.Select(Text).Distinct().Count() < 6)
        {
            await recorder.NextAsync();
        }
        Assert.Equal(2, recorder.MaxRunning);
    }

    [SkippableFact]
    public async Task MessagesPublishedWhileStoppedArriveAfterResubscribing()
    {
        var broker = Ready();
        var recorder = new Recorder();
        await using (await SubscribeAsync(broker, _topic, "app-a", recorder))
        {
            await PublishAsync(broker, _topic, "before");
            Assert.Equal("before", Text(await recorder.NextAsync()));
        }

        for (var i = 0; i < 3; i++)
        {
            await PublishAsync(broker, _topic, $"while-stopped-{i}");
        }
        var restarted = await RestartAsync(broker);
        await using var again = await SubscribeAsync(restarted, _topic, "app-a", recorder);

        Assert.Equal(["while-stopped-0", "while-stopped-1", "while-stopped-2"], (await recorder.NextAsync(3)).Select(Text).Order());
    }

    [SkippableFact]
    public async Task MessageInFlightWhenTheRuntimeStopsIsDeliveredAfterRestart()
    {
        var broker = Ready();
        var recorder = new Recorder { Answer = static async (_, ct) => { await Task.Delay(Timeout.Infinite, ct); return DeliveryOutcome.Success; } };
        var subscription = await SubscribeAsync(broker, _topic, "app-a", recorder);
        await PublishAsync(broker, _topic, "unfinished");
        Assert.Equal(1, (await recorder.NextAsync()).Attempt);
        await subscription.DisposeAsync().AsTask().WaitAsync(Within.Limit);

        var restarted = await RestartAsync(broker);
        var after = new Recorder();
        await using var again = await SubscribeAsync(restarted, _topic, "app-a", after);

        var message = await after.NextAsync();
        Assert.Equal("unfinished", Text(message));
        Assert.True(message.Attempt > 1 || !CountsAttemptsAcrossRestart, $"redelivery after restart reported attempt {message.Attempt}");
    }

    [SkippableFact]
    public async Task NewConsumerGroupSeesNothingPublishedBeforeItAndTopicsStayApart()
    {
        var broker = Ready();
        var other = _topic + "-other";
        var (a, b) = (new Recorder(), new Recorder());
        await using var first = await SubscribeAsync(broker, _topic, "app-a", a);
        await using var second = await SubscribeAsync(broker, other, "app-b", b);

        await PublishAsync(broker, _topic, "for-a");
        Assert.Equal("for-a", Text(await a.NextAsync()));
        await using var late = await SubscribeAsync(broker, _topic, "app-b", b);
        await PublishAsync(broker, other, "for-b");

        Assert.Equal("for-b", Text(await b.NextAsync()));
        Assert.True(await b.StaysQuietAsync(RedeliveryWait), "a message of another group or topic reached app-b");
    }

    [SkippableFact]
    public async Task AMessageAnsweredRetryForeverEndsAfterMaxDeliveryAttempts()
    {
        var broker = Ready();
        Assert.Equal(MaxDeliveryAttempts, broker.MaxDeliveryAttempts);
        var recorder = new Recorder { Answer = static (_, _) => Task.FromResult(DeliveryOutcome.Retry) };
        await using var subscription = await SubscribeAsync(broker, _topic, "app-a", recorder);

        await PublishAsync(broker, _topic, "poison");

        var attempts = (await recorder.NextAsync(MaxDeliveryAttempts)).Select(m => m.Attempt).ToList();
        Assert.Equal(Enumerable.Range(1, MaxDeliveryAttempts), attempts);
        Assert.True(await recorder.StaysQuietAsync(RedeliveryWait * 2), "a message was delivered more than maxDeliveryAttempts times");
    }

    [SkippableFact]
    public async Task PoisonMessagesFillingEverySlotDoNotBlockTheSubscriptionForEver()
    {
        var broker = Ready();
        var recorder = new Recorder { Answer = static (m, _) => Task.FromResult(Text(m).StartsWith("poison", StringComparison.Ordinal) ? DeliveryOutcome.Retry : DeliveryOutcome.Success) };
        await using var subscription = await SubscribeAsync(broker, _topic, "app-a", recorder, maxInFlight: 2);

        await PublishAsync(broker, _topic, "poison-1");
        await PublishAsync(broker, _topic, "poison-2");
        await PublishAsync(broker, _topic, "good");

        // Every in-flight slot is held by a poison message until its attempts run out; then the good one comes through.
        while (!recorder.All.Any(m => Text(m) == "good"))
        {
            await recorder.NextAsync(TimeSpan.FromSeconds(30));
        }
        Assert.All(recorder.All.Where(m => Text(m) != "good"), m => Assert.InRange(m.Attempt, 1, MaxDeliveryAttempts));
    }

    [SkippableFact]
    public async Task ThePublisherTravelsApartFromTheMetadataAPublisherSends()
    {
        var broker = Ready();
        var recorder = new Recorder();
        await using var subscription = await SubscribeAsync(broker, _topic, "app-a", recorder);

        var spoofed = new Dictionary<string, string> { ["publisher"] = "bystander", ["SharedRuntime-Publisher"] = "bystander", ["publisherappid"] = "bystander" };
        await PublishAsync(broker, _topic, "signed", metadata: spoofed, publisher: "attacker");
        await PublishAsync(broker, _topic, "unsigned");

        var messages = (await recorder.NextAsync(2)).ToDictionary(Text);
        Assert.Equal("attacker", messages["signed"].PublisherAppId);
        Assert.Equal("bystander", messages["signed"].Metadata["publisher"]);
        Assert.Null(messages["unsigned"].PublisherAppId);
        Assert.Null(messages["signed"].Undecodable);
    }
}
