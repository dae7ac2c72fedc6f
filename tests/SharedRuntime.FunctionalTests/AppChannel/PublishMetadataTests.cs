using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.AppChannel;

/// <summary>
/// Dapr's publish metadata and subscription metadata on the event's way: rawPayload on both sides, cloudevent.*
/// overrides, and ttlInSeconds (an expired message never reaches the app).
/// </summary>
public sealed class PublishMetadataTests : IAsyncLifetime
{
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly ConcurrentQueue<Delivery> _deliveries = new();

    public sealed record Delivery(string Path, string ContentType, string Body, string Publisher)
    {
        public JsonElement Event => JsonDocument.Parse(Body).RootElement;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    // xunit disposes a test class through IAsyncLifetime; IAsyncDisposable alone is not called.
    public async Task DisposeAsync()
    {
        foreach (var owned in Enumerable.Reverse(_owned))
        {
            await owned.DisposeAsync();
        }
    }

    private async Task<TestRuntime> RuntimeAsync(string yaml)
    {
        var app = await TestApp.StartAsync(async context =>
        {
            if (context.Request.Path == "/dapr/subscribe")
            {
                context.Response.StatusCode = 404;
                return;
            }
            using var reader = new StreamReader(context.Request.Body);
            _deliveries.Enqueue(new Delivery(context.Request.Path.Value ?? "", context.Request.ContentType ?? "", await reader.ReadToEndAsync(),
                context.Request.Headers["dapr-publisher-app-id"].ToString()));
        });
        _owned.Add(app);
        var runtime = await TestRuntime.StartAsync(AppResources.InMemoryPubSub("pubsub") + AppResources.Tenant("sub", "sub-token", app.Address) +
            AppResources.Tenant("pub", "pub-token", null) + AppResources.Tenant("other", "other-token", null) + yaml);
        _owned.Insert(0, runtime);
        return runtime;
    }

    private static string Subscription(string name, string topic, string path, bool raw = false) =>
        $"""
        apiVersion: dapr.io/v2alpha1
        kind: Subscription
        metadata:
          name: {name}
        spec:
          pubsubname: pubsub
          topic: {topic}
          routes:
            default: {path}
        {(raw ? "  metadata:\n    rawPayload: \"true\"\n" : "")}scopes:
          - sub
        ---

        """;

    private static Task SubscribedAsync(TestRuntime runtime, string topic, bool subscribed = true) =>
        Eventually.TrueAsync(() => Task.FromResult(((SharedRuntime.AppChannel.SubscriptionDelivery)runtime.App.Services.GetService(typeof(SharedRuntime.AppChannel.SubscriptionDelivery))!)
            .ActiveFor("sub").Any(s => s.Topic == topic) == subscribed), TimeSpan.FromSeconds(10), $"sub subscribed to {topic}: {subscribed}");

    private static async Task PublishAsync(TestRuntime runtime, string token, string topicAndQuery, HttpContent content)
    {
        using var response = await runtime.Client(token).PostAsync($"/v1.0/publish/pubsub/{topicAndQuery}", content);
        await StatusAsync(response, HttpStatusCode.NoContent);
    }

    private Task<Delivery> DeliveredAsync(string path) => DeliveredAsync(d => d.Path == path, path);

    private async Task<Delivery> DeliveredAsync(Func<Delivery, bool> which, string what)
    {
        await Eventually.TrueAsync(() => Task.FromResult(_deliveries.Any(which)), TimeSpan.FromSeconds(10), $"{what} delivered");
        return _deliveries.First(which);
    }

    [Fact]
    public async Task A_raw_subscription_gets_raw_messages_wrapped_in_a_CloudEvent_json_in_data_binary_in_data_base64()
    {
        var runtime = await RuntimeAsync(Subscription("raw", "raw", "/raw", raw: true));
        await SubscribedAsync(runtime, "raw");

        await PublishAsync(runtime, "pub-token", "raw?metadata.rawPayload=true", Json("""{"order":7}"""));
        var json = await DeliveredAsync(d => d.Path == "/raw" && d.Body.Contains("\"order\"", StringComparison.Ordinal), "the JSON message");
        Assert.Equal("application/cloudevents+json", json.ContentType);
        Assert.Equal(7, json.Event.GetProperty("data").GetProperty("order").GetInt32());
        Assert.StartsWith("application/json", json.Event.GetProperty("datacontenttype").GetString(), StringComparison.Ordinal);
        Assert.Equal("com.dapr.event.sent", json.Event.GetProperty("type").GetString());
        Assert.Equal("raw", json.Event.GetProperty("topic").GetString());
        Assert.Equal("pubsub", json.Event.GetProperty("pubsubname").GetString());
        Assert.Equal("pub", json.Event.GetProperty("publisherappid").GetString());

        var bytes = new ByteArrayContent([0, 1, 2, 255]);
        bytes.Headers.ContentType = new("application/octet-stream");
        await PublishAsync(runtime, "pub-token", "raw?metadata.rawPayload=true", bytes);
        var binary = await DeliveredAsync(d => d.Path == "/raw" && d.Body.Contains("data_base64", StringComparison.Ordinal), "the binary message");
        Assert.Equal(new byte[] { 0, 1, 2, 255 }, binary.Event.GetProperty("data_base64").GetBytesFromBase64());
        Assert.Equal("application/octet-stream", binary.Event.GetProperty("datacontenttype").GetString());
        Assert.False(binary.Event.TryGetProperty("data", out _));

        // A message published as a CloudEvent reaches a raw subscription as the broker holds it: the whole envelope in data.
        await PublishAsync(runtime, "pub-token", "raw", Json("""{"wrapped":true}"""));
        var enveloped = await DeliveredAsync(d => d.Path == "/raw" && d.Body.Contains("\"wrapped\"", StringComparison.Ordinal), "the CloudEvent");
        Assert.True(enveloped.Event.GetProperty("data").GetProperty("data").GetProperty("wrapped").GetBoolean());
        Assert.Equal("application/cloudevents+json", enveloped.Event.GetProperty("datacontenttype").GetString());
    }

    [Fact]
    public async Task Cloudevent_metadata_overrides_the_envelope_but_never_the_publisher()
    {
        var runtime = await RuntimeAsync(Subscription("orders", "orders", "/orders"));
        await SubscribedAsync(runtime, "orders");
        const string trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

        await PublishAsync(runtime, "other-token",
            $"orders?metadata.cloudevent.id=order-7&metadata.cloudevent.source=pub&metadata.CloudEvent.Type=com.example.order&metadata.cloudevent.traceparent={trace}&metadata.cloudevent.tracestate=k%3Dv",
            Json("""{"n":1}"""));
        await PublishAsync(runtime, "other-token", "orders?metadata.cloudevent.traceparent=not-a-trace&metadata.cloudevent.id=second", Json("""{"n":2}"""));

        var first = (await DeliveredAsync(d => d.Body.Contains("order-7", StringComparison.Ordinal), "the overridden event")).Event;
        Assert.Equal("order-7", first.GetProperty("id").GetString());
        Assert.Equal("pub", first.GetProperty("source").GetString());
        Assert.Equal("com.example.order", first.GetProperty("type").GetString());
        Assert.Equal(trace, first.GetProperty("traceparent").GetString());
        Assert.Equal(trace, first.GetProperty("traceid").GetString());
        Assert.Equal("k=v", first.GetProperty("tracestate").GetString());
        // The source is the publisher's word, as in Dapr; who really published it is the runtime's.
        Assert.Equal("other", first.GetProperty("publisherappid").GetString());
        Assert.Equal("other", _deliveries.First(d => d.Body.Contains("order-7", StringComparison.Ordinal)).Publisher);

        var second = (await DeliveredAsync(d => d.Body.Contains("\"second\"", StringComparison.Ordinal), "the event with a bad trace override")).Event;
        Assert.Matches("^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$", second.GetProperty("traceparent").GetString());
    }

    [Fact]
    public async Task An_expired_message_is_not_delivered_and_a_bad_ttl_is_the_publishers_400()
    {
        var runtime = await RuntimeAsync(Subscription("jobs", "jobs", "/jobs") + Subscription("raw-jobs", "raw-jobs", "/raw", raw: true));
        await SubscribedAsync(runtime, "jobs");
        await SubscribedAsync(runtime, "raw-jobs");

        // A message with a TTL delivered in time carries Dapr's expiration attribute.
        await PublishAsync(runtime, "pub-token", "jobs?metadata.ttlInSeconds=60", Json("""{"n":"in-time"}"""));
        var inTime = (await DeliveredAsync(d => d.Body.Contains("in-time", StringComparison.Ordinal), "the message in time")).Event;
        Assert.True(DateTimeOffset.Parse(inTime.GetProperty("expiration").GetString()!, System.Globalization.CultureInfo.InvariantCulture) > DateTimeOffset.UtcNow);

        // The subscriptions stop; the broker keeps what is published for them meanwhile.
        var file = Path.Combine(runtime.ResourcesPath, "resources.yaml");
        var yaml = await File.ReadAllTextAsync(file);
        var without = yaml.Replace("scopes:\n  - sub\n", "scopes:\n  - nobody\n", StringComparison.Ordinal);
        Assert.NotEqual(yaml, without);
        await runtime.WriteResourceAsync("resources.yaml", without);
        await SubscribedAsync(runtime, "jobs", subscribed: false);
        await SubscribedAsync(runtime, "raw-jobs", subscribed: false);

        var published = DateTimeOffset.UtcNow;
        await PublishAsync(runtime, "pub-token", "jobs?metadata.ttlInSeconds=1", Json("""{"n":"expires"}"""));
        await PublishAsync(runtime, "pub-token", "raw-jobs?metadata.ttlInSeconds=1&metadata.rawPayload=true", new StringContent("raw-expires"));
        await PublishAsync(runtime, "pub-token", "jobs", Json("""{"n":"kept"}"""));
        await PublishAsync(runtime, "pub-token", "raw-jobs?metadata.rawPayload=true", new StringContent("raw-kept"));
        await Eventually.TrueAsync(() => Task.FromResult(DateTimeOffset.UtcNow > published.AddSeconds(1.2)), TimeSpan.FromSeconds(5), "the TTL passed");

        await runtime.WriteResourceAsync("resources.yaml", yaml);
        await DeliveredAsync(d => d.Body.Contains("kept", StringComparison.Ordinal) && d.Path == "/jobs", "the message without a TTL");
        await DeliveredAsync(d => d.Path == "/raw" && Encoding.UTF8.GetString(d.Event.GetProperty("data_base64").GetBytesFromBase64()) == "raw-kept", "the raw message without a TTL");
        await Eventually.TrueAsync(() => Task.FromResult(
            ((SharedRuntime.Components.PubSub.InMemoryBroker)runtime.Configuration.Current.Components["pubsub"].Instance!).Unacknowledged("jobs", "sub") == 0 &&
            ((SharedRuntime.Components.PubSub.InMemoryBroker)runtime.Configuration.Current.Components["pubsub"].Instance!).Unacknowledged("raw-jobs", "sub") == 0),
            TimeSpan.FromSeconds(10), "everything settled");
        Assert.DoesNotContain(_deliveries, d => d.Body.Contains("\"expires\"", StringComparison.Ordinal));
        Assert.DoesNotContain(_deliveries, d => d.Path == "/raw" && Encoding.UTF8.GetString(d.Event.GetProperty("data_base64").GetBytesFromBase64()) == "raw-expires");
        using (var client = new HttpClient())
        {
            Assert.Contains("outcome=\"expired\"", await client.GetStringAsync(new Uri(runtime.MetricsAddress, "/metrics")), StringComparison.Ordinal);
        }

        foreach (var bad in new[] { "0", "-1", "soon", "99999999999" })
        {
            using var refused = await runtime.Client("pub-token").PostAsync($"/v1.0/publish/pubsub/jobs?metadata.ttlInSeconds={bad}", Json("{}"));
            await ErrorAsync(refused, HttpStatusCode.BadRequest, "ERR_PUBSUB_REQUEST_METADATA");
        }
    }
}
