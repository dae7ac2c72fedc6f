using System.Collections.Concurrent;
using Dapr;
using Dapr.AspNetCore;
using Dapr.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace SharedRuntime.SdkTests;

/// <summary>
/// An unmodified Dapr.AspNetCore app (<c>MapSubscribeHandler</c> and topic handlers), configured only with the
/// <c>DAPR_*</c> settings an injector sets, behind a Tenant without any opt-in: it receives the events its handlers
/// name. A second tenant neither sees its subscriptions nor receives its events.
/// </summary>
public sealed class SubscriptionSdkTests : IAsyncLifetime
{
    private TestRuntime _runtime = null!;
    private WebApplication _app = null!;
    private DaprClient _publisher = null!;
    private DaprClient _other = null!;
    private readonly ConcurrentQueue<string> _received = new();

    public sealed record Order(string Id, int Total);

    public async Task InitializeAsync()
    {
        var appPort = TestRuntime.FreePorts(1)[0];
        _runtime = await TestRuntime.StartAsync(
            Resources.Tenant("fn", "fn-token", appEndpoint: $"http://127.0.0.1:{appPort}") +
            Resources.Tenant("pub", "pub-token") +
            Resources.Tenant("other", "other-token") +
            Resources.Component("pubsub", "pubsub.in-memory"));

        var builder = TestHost.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        // What the environment of an injected pod holds; ASP.NET reads environment variables into configuration.
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["DAPR_HTTP_ENDPOINT"] = _runtime.HttpAddress.ToString().TrimEnd('/'),
            ["DAPR_GRPC_ENDPOINT"] = _runtime.GrpcAddress.ToString().TrimEnd('/'),
            ["DAPR_API_TOKEN"] = "fn-token",
        });
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, appPort));
        builder.Services.AddDaprClient();
        _app = builder.Build();
        _app.UseCloudEvents();
        _app.MapSubscribeHandler();
        _app.MapPost("/orders", (Order order) =>
        {
            _received.Enqueue($"orders:{order.Id}:{order.Total}");
            return Results.Ok();
        }).WithTopic("pubsub", "orders");
        _app.MapPost("/raw-orders", (Order order) =>
        {
            _received.Enqueue($"raw:{order.Id}:{order.Total}");
            return Results.Ok();
        }).WithTopic("pubsub", "raw-orders").WithMetadata(new TopicMetadataAttribute("rawPayload", "true"));
        _app.MapPost("/bulk-orders", (BulkSubscribeMessage<BulkMessageModel<Order>> bulk) =>
        {
            var statuses = new List<BulkSubscribeAppResponseEntry>();
            foreach (var entry in bulk.Entries)
            {
                _received.Enqueue($"bulk:{entry.Event.Data.Id}:{entry.Event.Data.Total}:{bulk.Entries.Count}");
                statuses.Add(new BulkSubscribeAppResponseEntry(entry.EntryId, BulkSubscribeAppResponseStatus.SUCCESS));
            }
            return Results.Ok(new BulkSubscribeAppResponse(statuses));
        }).WithTopic("pubsub", "bulk-orders").WithBulkSubscribe(new BulkSubscribeTopicOptions { TopicName = "bulk-orders", MaxMessagesCount = 10, MaxAwaitDurationMs = 1000 });
        await _app.StartAsync();
        // The app waits for its runtime as it starts, as SDK apps do.
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _app.Services.GetRequiredService<DaprClient>().WaitForSidecarAsync(wait.Token);

        _publisher = Client("pub-token");
        _other = Client("other-token");
    }

    private DaprClient Client(string token) => new DaprClientBuilder()
        .UseHttpEndpoint(_runtime.HttpAddress.ToString())
        .UseGrpcEndpoint(_runtime.GrpcAddress.ToString())
        .UseDaprApiToken(token)
        .Build();

    public async Task DisposeAsync()
    {
        _publisher.Dispose();
        _other.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        await _runtime.DisposeAsync();
    }

    private Task SubscribedAsync(string topic) =>
        Eventually.TrueAsync(() => Task.FromResult(_runtime.App.Services.GetRequiredService<SharedRuntime.AppChannel.SubscriptionDelivery>()
            .ActiveFor("fn").Any(s => s.Topic == topic)), TimeSpan.FromSeconds(10), $"fn subscribed to {topic}");

    [Fact]
    public async Task TopicHandlersReceiveEventsWithoutAnyOptIn()
    {
        await SubscribedAsync("orders");
        await _publisher.PublishEventAsync("pubsub", "orders", new Order("o-1", 42));

        await Eventually.TrueAsync(() => Task.FromResult(_received.Contains("orders:o-1:42")), TimeSpan.FromSeconds(10), "the [Topic] handler received the event");

        Assert.Contains("\"orders\"", await _runtime.Client("fn-token").GetStringAsync("/v1.0/metadata"), StringComparison.Ordinal);
        Assert.DoesNotContain("\"orders\"", await _runtime.Client("other-token").GetStringAsync("/v1.0/metadata"), StringComparison.Ordinal);
        Assert.Empty(_runtime.App.Services.GetRequiredService<SharedRuntime.AppChannel.SubscriptionDelivery>().ActiveFor("other"));
    }

    [Fact]
    public async Task ABulkHandlerReceivesEventsInBatchesAndItsStatusesAcknowledgeThem()
    {
        await SubscribedAsync("bulk-orders");
        for (var i = 0; i < 5; i++)
        {
            await _publisher.PublishEventAsync("pubsub", "bulk-orders", new Order($"b-{i}", i));
        }

        await Eventually.TrueAsync(() => Task.FromResult(Enumerable.Range(0, 5).All(i => _received.Any(r => r.StartsWith($"bulk:b-{i}:{i}:", StringComparison.Ordinal)))),
            TimeSpan.FromSeconds(10), "the bulk handler received every event");
        // The envelope really is a batch: Dapr.AspNetCore read the events of one request together.
        Assert.Contains(_received, r => r.StartsWith("bulk:", StringComparison.Ordinal) && !r.EndsWith(":1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ARawSubscriptionsHandlerReadsARawMessageAsPublished()
    {
        await SubscribedAsync("raw-orders");
        await _publisher.PublishEventAsync("pubsub", "raw-orders", new Order("r-1", 7), new Dictionary<string, string> { ["rawPayload"] = "true" });

        await Eventually.TrueAsync(() => Task.FromResult(_received.Contains("raw:r-1:7")), TimeSpan.FromSeconds(10), "the raw handler received the message");
    }
}
