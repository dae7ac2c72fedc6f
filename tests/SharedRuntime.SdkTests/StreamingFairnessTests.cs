using System.Collections.Concurrent;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.Admission;
using AppCallback = Dapr.AppCallback.Autogen.Grpc.v1;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.SdkTests;

/// <summary>
/// A streaming subscription's events in flight take slots of the tenant's app channel, in the lines pushed deliveries
/// use: a stream holding all of them leaves the tenant's pushed deliveries their turn, never another tenant's slots.
/// </summary>
public sealed class StreamingFairnessTests : IAsyncLifetime
{
    private const int MaxConcurrency = 4;
    private const string Status = """{"status":"SUCCESS"}""";

    private TestRuntime _runtime = null!;
    private TestApp _fnApp = null!;
    private TestApp _otherApp = null!;
    private GrpcChannel _channel = null!;
    private Autogen.Dapr.DaprClient _client = null!;
    private readonly ConcurrentQueue<string> _fnReceived = new();
    private readonly ConcurrentQueue<string> _otherReceived = new();

    public async Task InitializeAsync()
    {
        _fnApp = await TestApp.StartAsync(Recording(_fnReceived));
        _otherApp = await TestApp.StartAsync(Recording(_otherReceived));
        _runtime = await TestRuntime.StartAsync(
            Tenant("fn", _fnApp, MaxConcurrency) +
            Tenant("other", _otherApp, MaxConcurrency) +
            Tenant("streamer", app: null, maxConcurrency: 3) +
            Resources.Tenant("pub", "pub-token") +
            Resources.Component("pubsub", "pubsub.in-memory", new Dictionary<string, string> { ["redeliveryDelay"] = "50ms" }) +
            Subscription("fn-pushed", "pushed", "fn") +
            Subscription("other-orders", "other-orders", "other"));
        _channel = GrpcChannel.ForAddress(_runtime.GrpcAddress);
        _client = new Autogen.Dapr.DaprClient(_channel);
        await Eventually.TrueAsync(() => Task.FromResult(
                _runtime.App.Services.GetRequiredService<SharedRuntime.AppChannel.SubscriptionDelivery>().ActiveFor("fn").Count == 1 &&
                _runtime.App.Services.GetRequiredService<SharedRuntime.AppChannel.SubscriptionDelivery>().ActiveFor("other").Count == 1),
            TimeSpan.FromSeconds(10), "the declared subscriptions are delivered");
    }

    private static RequestDelegate Recording(ConcurrentQueue<string> received) => async context =>
    {
        using var reader = new StreamReader(context.Request.Body);
        received.Enqueue(await reader.ReadToEndAsync());
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(Status);
    };

    private static string Tenant(string appId, TestApp? app, int maxConcurrency) => $"""
        apiVersion: sharedruntime.io/v1alpha1
        kind: Tenant
        metadata:
          name: {appId}
        spec:
          appId: {appId}
          apiToken:
            value: "{appId}-token"
        {(app is null ? "" : $"  appEndpoint: {app.Address.ToString().TrimEnd('/')}\n")}  appChannel:
            maxConcurrency: {maxConcurrency}
            discoverSubscriptions: false
        ---

        """;

    private static string Subscription(string name, string topic, string scope) => $"""
        apiVersion: dapr.io/v2alpha1
        kind: Subscription
        metadata:
          name: {name}
        spec:
          pubsubname: pubsub
          topic: {topic}
          routes:
            default: /{topic}
        scopes: [{scope}]
        ---

        """;

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        await _runtime.DisposeAsync();
        await _fnApp.DisposeAsync();
        await _otherApp.DisposeAsync();
    }

    private FairQueue Slots(string appId) =>
        _runtime.App.Services.GetRequiredService<SharedRuntime.AppChannel.AppChannels>().Find(appId)!.Calls;

    private static string Line(string topic) => SharedRuntime.AppChannel.AppChannel.DeliveryLine("pubsub", topic);

    private async Task<AsyncDuplexStreamingCall<Autogen.SubscribeTopicEventsRequestAlpha1, Autogen.SubscribeTopicEventsResponseAlpha1>> OpenAsync(string appId, string topic)
    {
        var call = _client.SubscribeTopicEventsAlpha1(new Metadata { { "dapr-api-token", $"{appId}-token" } });
        await call.RequestStream.WriteAsync(new Autogen.SubscribeTopicEventsRequestAlpha1
        {
            InitialRequest = new Autogen.SubscribeTopicEventsRequestInitialAlpha1 { PubsubName = "pubsub", Topic = topic },
        });
        using var first = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.True(await call.ResponseStream.MoveNext(first.Token));
        Assert.NotNull(call.ResponseStream.Current.InitialResponse);
        return call;
    }

    private static async Task<AppCallback.TopicEventRequest> NextAsync(AsyncDuplexStreamingCall<Autogen.SubscribeTopicEventsRequestAlpha1, Autogen.SubscribeTopicEventsResponseAlpha1> call)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.True(await call.ResponseStream.MoveNext(timeout.Token));
        return call.ResponseStream.Current.EventMessage;
    }

    private static Task SucceedAsync(AsyncDuplexStreamingCall<Autogen.SubscribeTopicEventsRequestAlpha1, Autogen.SubscribeTopicEventsResponseAlpha1> call, string id) =>
        call.RequestStream.WriteAsync(new Autogen.SubscribeTopicEventsRequestAlpha1
        {
            EventProcessed = new Autogen.SubscribeTopicEventsRequestProcessedAlpha1
            {
                Id = id,
                Status = new AppCallback.TopicEventResponse { Status = AppCallback.TopicEventResponse.Types.TopicEventResponseStatus.Success },
            },
        });

    private async Task PublishAsync(string topic, string json)
    {
        using var response = await _runtime.Client("pub-token").PostAsync($"/v1.0/publish/pubsub/{topic}", new StringContent(json, Encoding.UTF8, "application/json"));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>fn's stream of "jobs" holds every slot of fn's channel, with <paramref name="waiting"/> more events in its line.</summary>
    private async Task<(AsyncDuplexStreamingCall<Autogen.SubscribeTopicEventsRequestAlpha1, Autogen.SubscribeTopicEventsResponseAlpha1> Call, List<AppCallback.TopicEventRequest> Held)>
        HoldAllSlotsAsync(int waiting)
    {
        var call = await OpenAsync("fn", "jobs");
        for (var i = 0; i < MaxConcurrency + waiting; i++)
        {
            await PublishAsync("jobs", $$"""{"job":{{i}}}""");
        }
        var held = new List<AppCallback.TopicEventRequest>();
        for (var i = 0; i < MaxConcurrency; i++)
        {
            held.Add(await NextAsync(call));
        }
        // The rest wait in the stream's line of fn's channel, not on the stream.
        await Eventually.TrueAsync(() => Task.FromResult(Slots("fn").InFlight == MaxConcurrency && Slots("fn").QueuedFor(Line("jobs")) == waiting),
            TimeSpan.FromSeconds(10), "the stream's other events wait for a slot of fn's channel");
        return (call, held);
    }

    [Fact]
    public async Task A_streams_events_in_flight_take_the_apps_slots_and_a_pushed_delivery_still_gets_its_turn()
    {
        var (call, held) = await HoldAllSlotsAsync(waiting: 6);
        using var stream = call;

        await PublishAsync("pushed", """{"n":"pushed"}""");
        await Eventually.TrueAsync(() => Task.FromResult(Slots("fn").QueuedFor(Line("pushed")) == 1), TimeSpan.FromSeconds(10),
            "the pushed delivery waits in its own line");
        Assert.Empty(_fnReceived);
        Assert.Equal(MaxConcurrency, Slots("fn").InFlight);

        // Freed slots go to the lines in turn: the stream's line (first to wait), then the pushed delivery's, although
        // the stream still has events waiting.
        await SucceedAsync(call, held[0].Id);
        await SucceedAsync(call, held[1].Id);
        await Eventually.TrueAsync(() => Task.FromResult(_fnReceived.Any(e => e.Contains("pushed", StringComparison.Ordinal))), TimeSpan.FromSeconds(10),
            "the pushed delivery reached fn's app");
        Assert.True(Slots("fn").InFlight <= MaxConcurrency);
    }

    [Fact]
    public async Task A_tenant_whose_stream_holds_its_maximum_in_flight_does_not_starve_another_tenants_pushed_deliveries()
    {
        var (call, _) = await HoldAllSlotsAsync(waiting: 10);
        using var stream = call;

        const int Events = 3 * MaxConcurrency;
        for (var i = 0; i < Events; i++)
        {
            await PublishAsync("other-orders", $$"""{"order":"o-{{i}}"}""");
        }
        await Eventually.TrueAsync(() => Task.FromResult(Enumerable.Range(0, Events).All(i => _otherReceived.Any(e => e.Contains($"\"o-{i}\"", StringComparison.Ordinal)))),
            TimeSpan.FromSeconds(10), "every event of the other tenant reached its app");

        // fn's stream still holds fn's slots, and only fn's.
        Assert.Equal(MaxConcurrency, Slots("fn").InFlight);
        Assert.Equal(10, Slots("fn").QueuedFor(Line("jobs")));
        await Eventually.TrueAsync(() => Task.FromResult(Slots("other").InFlight == 0), TimeSpan.FromSeconds(10), "the other tenant's slots are free");
        Assert.DoesNotContain(_otherReceived, e => e.Contains("\"job\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_streams_of_a_tenant_without_an_app_channel_share_one_bound_of_its_size()
    {
        using var a = await OpenAsync("streamer", "a");
        using var b = await OpenAsync("streamer", "b");
        for (var i = 0; i < 5; i++)
        {
            await PublishAsync("a", $$"""{"a":{{i}}}""");
            await PublishAsync("b", $$"""{"b":{{i}}}""");
        }
        var streams = _runtime.App.Services.GetRequiredService<SharedRuntime.AppChannel.StreamingSubscriptions>();
        await Eventually.TrueAsync(() => Task.FromResult(streams.SlotsInUse("streamer") == (3, 7)), TimeSpan.FromSeconds(10),
            "three events in flight across both streams, the other seven waiting");

        // Answering the events in flight lets the waiting ones through, on both streams in turn.
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var aNext = a.ResponseStream.MoveNext(CancellationToken.None);
        var bNext = b.ResponseStream.MoveNext(CancellationToken.None);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (seen.Count < 10)
        {
            var done = await Task.WhenAny(aNext, bNext).WaitAsync(deadline.Token);
            Assert.True(await done);
            var (call, isA) = done == aNext ? (a, true) : (b, false);
            var message = call.ResponseStream.Current.EventMessage;
            Assert.True(seen.Add(message.Data.ToStringUtf8()));
            Assert.True(streams.SlotsInUse("streamer").InFlight <= 3);
            await SucceedAsync(call, message.Id);
            if (isA)
            {
                aNext = a.ResponseStream.MoveNext(CancellationToken.None);
            }
            else
            {
                bNext = b.ResponseStream.MoveNext(CancellationToken.None);
            }
        }
        Assert.Equal(5, seen.Count(s => s.Contains("\"a\"", StringComparison.Ordinal)));
    }
}
