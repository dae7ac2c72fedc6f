using System.Text;
using System.Text.Json;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using AppCallback = Dapr.AppCallback.Autogen.Grpc.v1;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.SdkTests;

/// <summary>
/// Streaming subscriptions through a gRPC client built from Dapr.Protos: events arrive on the stream, SUCCESS ends
/// them, RETRY brings them back, DROP ends them (to the dead-letter topic), a closed stream hands its unanswered
/// events back, and a tenant's open streams are bounded without touching another tenant's.
/// </summary>
public sealed class StreamingSubscriptionTests : IAsyncLifetime
{
    private TestRuntime _runtime = null!;
    private GrpcChannel _channel = null!;
    private Autogen.Dapr.DaprClient _client = null!;

    public async Task InitializeAsync()
    {
        _runtime = await TestRuntime.StartAsync(
            Resources.Tenant("fn", "fn-token") +
            Resources.Tenant("other", "other-token") +
            Resources.Tenant("pub", "pub-token") +
            Resources.Component("pubsub", "pubsub.in-memory", new Dictionary<string, string> { ["redeliveryDelay"] = "50ms" }));
        _channel = GrpcChannel.ForAddress(_runtime.GrpcAddress);
        _client = new Autogen.Dapr.DaprClient(_channel);
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        await _runtime.DisposeAsync();
    }

    private static Metadata Token(string token) => new() { { "dapr-api-token", token } };

    private async Task<AsyncDuplexStreamingCall<Autogen.SubscribeTopicEventsRequestAlpha1, Autogen.SubscribeTopicEventsResponseAlpha1>> OpenAsync(
        string token, string topic, string? deadLetterTopic = null, CancellationToken cancellationToken = default)
    {
        var call = _client.SubscribeTopicEventsAlpha1(Token(token), cancellationToken: cancellationToken);
        var initial = new Autogen.SubscribeTopicEventsRequestInitialAlpha1 { PubsubName = "pubsub", Topic = topic };
        if (deadLetterTopic is not null)
        {
            initial.DeadLetterTopic = deadLetterTopic;
        }
        await call.RequestStream.WriteAsync(new Autogen.SubscribeTopicEventsRequestAlpha1 { InitialRequest = initial });
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

    private static Task AnswerAsync(AsyncDuplexStreamingCall<Autogen.SubscribeTopicEventsRequestAlpha1, Autogen.SubscribeTopicEventsResponseAlpha1> call, string id,
        AppCallback.TopicEventResponse.Types.TopicEventResponseStatus status) =>
        call.RequestStream.WriteAsync(new Autogen.SubscribeTopicEventsRequestAlpha1
        {
            EventProcessed = new Autogen.SubscribeTopicEventsRequestProcessedAlpha1 { Id = id, Status = new AppCallback.TopicEventResponse { Status = status } },
        });

    private async Task PublishAsync(string topic, string json)
    {
        using var response = await _runtime.Client("pub-token").PostAsync($"/v1.0/publish/pubsub/{topic}", new StringContent(json, Encoding.UTF8, "application/json"));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    private static string Text(AppCallback.TopicEventRequest e) => e.Data.ToStringUtf8();

    private SharedRuntime.AppChannel.StreamingSubscriptions Streams => _runtime.App.Services.GetRequiredService<SharedRuntime.AppChannel.StreamingSubscriptions>();

    [Fact]
    public async Task Success_acknowledges_retry_redelivers_and_drop_goes_to_the_dead_letter_topic()
    {
        using var call = await OpenAsync("fn-token", "jobs", deadLetterTopic: "jobs-dead");
        using var dead = await OpenAsync("fn-token", "jobs-dead");

        await PublishAsync("jobs", """{"n":"ok"}""");
        var ok = await NextAsync(call);
        Assert.Equal("""{"n":"ok"}""", Text(ok));
        Assert.Equal("jobs", ok.Topic);
        Assert.Equal("pub", ok.Source);
        Assert.Equal("com.dapr.event.sent", ok.Type);
        await AnswerAsync(call, ok.Id, AppCallback.TopicEventResponse.Types.TopicEventResponseStatus.Success);

        await PublishAsync("jobs", """{"n":"again"}""");
        var again = await NextAsync(call);
        await AnswerAsync(call, again.Id, AppCallback.TopicEventResponse.Types.TopicEventResponseStatus.Retry);
        var redelivered = await NextAsync(call);
        Assert.Equal("""{"n":"again"}""", Text(redelivered));
        Assert.NotEqual(again.Id, redelivered.Id);
        await AnswerAsync(call, redelivered.Id, AppCallback.TopicEventResponse.Types.TopicEventResponseStatus.Success);

        await PublishAsync("jobs", """{"n":"poison"}""");
        var poison = await NextAsync(call);
        await AnswerAsync(call, poison.Id, AppCallback.TopicEventResponse.Types.TopicEventResponseStatus.Drop);
        var deadLettered = await NextAsync(dead);
        Assert.Contains("poison", Text(deadLettered), StringComparison.Ordinal);
        await AnswerAsync(dead, deadLettered.Id, AppCallback.TopicEventResponse.Types.TopicEventResponseStatus.Success);

        // Nothing else comes: the successes and the drop ended their events.
        await PublishAsync("jobs", """{"n":"last"}""");
        Assert.Equal("""{"n":"last"}""", Text(await NextAsync(call)));
    }

    [Fact]
    public async Task A_stream_holds_at_most_its_bound_of_unanswered_events_and_gets_the_next_once_it_answers()
    {
        using var call = await OpenAsync("fn-token", "flood");
        const int bound = SharedRuntime.AppChannel.StreamingSubscriptions.MaxInFlightPerStream;
        for (var i = 0; i < bound + 5; i++)
        {
            await PublishAsync("flood", $$"""{"n":{{i}}}""");
        }
        var held = new List<AppCallback.TopicEventRequest>();
        for (var i = 0; i < bound; i++)
        {
            held.Add(await NextAsync(call));
        }

        // A quiet period: nothing past the bound arrives while every event handed out waits for its answer.
        var next = call.ResponseStream.MoveNext(CancellationToken.None);
        Assert.NotSame(next, await Task.WhenAny(next, Task.Delay(TimeSpan.FromMilliseconds(500))));

        await AnswerAsync(call, held[0].Id, AppCallback.TopicEventResponse.Types.TopicEventResponseStatus.Success);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.True(await next.WaitAsync(timeout.Token));
        Assert.DoesNotContain(call.ResponseStream.Current.EventMessage.Id, held.Select(h => h.Id));
    }

    [Fact]
    public async Task A_closed_stream_hands_its_unanswered_events_to_the_next_one()
    {
        using (var first = await OpenAsync("fn-token", "orders"))
        {
            await PublishAsync("orders", """{"n":1}""");
            Assert.Equal("""{"n":1}""", Text(await NextAsync(first)));
            await first.RequestStream.CompleteAsync();
            await Eventually.TrueAsync(() => Task.FromResult(Streams.OpenFor("fn") == 0), TimeSpan.FromSeconds(10), "the stream closed");
        }
        using var second = await OpenAsync("fn-token", "orders");
        var again = await NextAsync(second);
        Assert.Equal("""{"n":1}""", Text(again));
        await AnswerAsync(second, again.Id, AppCallback.TopicEventResponse.Types.TopicEventResponseStatus.Success);
    }

    [Fact]
    public async Task A_tenants_open_streams_are_bounded_and_another_tenant_is_unaffected()
    {
        using var stop = new CancellationTokenSource();
        var open = new List<IDisposable>();
        try
        {
            for (var i = 0; i < SharedRuntime.AppChannel.StreamingSubscriptions.MaxStreamsPerApp; i++)
            {
                open.Add(await OpenAsync("fn-token", $"t{i}", cancellationToken: stop.Token));
            }
            var refused = _client.SubscribeTopicEventsAlpha1(Token("fn-token"));
            await refused.RequestStream.WriteAsync(new Autogen.SubscribeTopicEventsRequestAlpha1
            {
                InitialRequest = new Autogen.SubscribeTopicEventsRequestInitialAlpha1 { PubsubName = "pubsub", Topic = "one-more" },
            });
            var error = await Assert.ThrowsAsync<RpcException>(() => refused.ResponseStream.MoveNext(CancellationToken.None));
            Assert.True(error.StatusCode == StatusCode.ResourceExhausted, error.ToString());
            refused.Dispose();

            // The same topic twice is refused too; another tenant streams the topic, and only it gets its copy.
            var twice = _client.SubscribeTopicEventsAlpha1(Token("other-token"));
            using var theirs = await OpenAsync("other-token", "t0");
            await twice.RequestStream.WriteAsync(new Autogen.SubscribeTopicEventsRequestAlpha1
            {
                InitialRequest = new Autogen.SubscribeTopicEventsRequestInitialAlpha1 { PubsubName = "pubsub", Topic = "t0" },
            });
            Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => twice.ResponseStream.MoveNext(CancellationToken.None))).StatusCode);
            twice.Dispose();
            await PublishAsync("t0", """{"n":"both"}""");
            Assert.Equal("""{"n":"both"}""", Text(await NextAsync(theirs)));
            Assert.Equal(SharedRuntime.AppChannel.StreamingSubscriptions.MaxStreamsPerApp, Streams.OpenFor("fn"));
            Assert.Equal(1, Streams.OpenFor("other"));
        }
        finally
        {
            await stop.CancelAsync();
            foreach (var call in open)
            {
                call.Dispose();
            }
        }
        await Eventually.TrueAsync(() => Task.FromResult(Streams.OpenFor("fn") == 0), TimeSpan.FromSeconds(10), "the streams closed");
    }
}
