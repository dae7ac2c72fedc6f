using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using SharedRuntime.AppChannel;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.AppChannel;

/// <summary>
/// Bulk subscriptions, declared and discovered: events arrive in Dapr's bulk envelope, batches hold at most
/// maxMessagesCount events, and each entry ends as the app's status for it says.
/// </summary>
public sealed class BulkSubscribeTests : IAsyncLifetime
{
    private readonly List<IAsyncDisposable> _owned = [];

    public Task InitializeAsync() => Task.CompletedTask;

    // xunit disposes a test class through IAsyncLifetime; IAsyncDisposable alone is not called.
    public async Task DisposeAsync()
    {
        foreach (var owned in Enumerable.Reverse(_owned))
        {
            await owned.DisposeAsync();
        }
    }

    /// <summary>A bulk request the app received: its content type and envelope.</summary>
    private sealed record Batch(string Path, string ContentType, JsonElement Envelope)
    {
        public IEnumerable<(string EntryId, JsonElement Event)> Entries =>
            Envelope.GetProperty("entries").EnumerateArray().Select(e => (e.GetProperty("entryId").GetString()!, e.GetProperty("event")));
    }

    /// <summary>An app answering each entry with <paramref name="status"/> of the event's data.n and the times it has seen that n.</summary>
    private async Task<(TestApp App, ConcurrentQueue<Batch> Batches)> AppAsync(Func<int, int, string> status, string? subscribeAnswer = null, TaskCompletionSource? hang = null)
    {
        var batches = new ConcurrentQueue<Batch>();
        var seen = new ConcurrentDictionary<int, int>();
        var app = await TestApp.StartAsync(async context =>
        {
            if (context.Request.Path == "/dapr/subscribe")
            {
                if (subscribeAnswer is null)
                {
                    context.Response.StatusCode = 404;
                    return;
                }
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync(subscribeAnswer);
                return;
            }
            using var reader = new StreamReader(context.Request.Body);
            var envelope = JsonDocument.Parse(await reader.ReadToEndAsync()).RootElement.Clone();
            var batch = new Batch(context.Request.Path.Value ?? "", context.Request.ContentType ?? "", envelope);
            batches.Enqueue(batch);
            if (hang is not null)
            {
                await hang.Task.WaitAsync(context.RequestAborted);
            }
            var statuses = batch.Entries.Select(e =>
            {
                var n = e.Event.GetProperty("data").GetProperty("n").GetInt32();
                return new { entryId = e.EntryId, status = status(n, seen.AddOrUpdate(n, 1, (_, c) => c + 1)) };
            });
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(JsonSerializer.Serialize(new { statuses }));
        });
        _owned.Add(app);
        return (app, batches);
    }

    private async Task<TestRuntime> RuntimeAsync(string yaml)
    {
        var runtime = await TestRuntime.StartAsync(AppResources.InMemoryPubSub("pubsub") + AppResources.Tenant("pub", "pub-token", null) + yaml);
        _owned.Insert(0, runtime);
        return runtime;
    }

    private static string BulkSubscription(string name, string topic, string path, string app, int maxMessagesCount, int maxAwaitDurationMs) =>
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
          bulkSubscribe:
            enabled: true
            maxMessagesCount: {maxMessagesCount}
            maxAwaitDurationMs: {maxAwaitDurationMs}
        scopes:
          - {app}
        ---

        """;

    private static SubscriptionDelivery Delivery(TestRuntime runtime) => (SubscriptionDelivery)runtime.App.Services.GetService(typeof(SubscriptionDelivery))!;

    private static Task SubscribedAsync(TestRuntime runtime, string appId, string topic) =>
        Eventually.TrueAsync(() => Task.FromResult(Delivery(runtime).ActiveFor(appId).Any(s => s.Topic == topic)), TimeSpan.FromSeconds(10), $"{appId} subscribed to {topic}");

    private static int Unacknowledged(TestRuntime runtime, string topic, string appId) =>
        ((SharedRuntime.Components.PubSub.InMemoryBroker)runtime.Configuration.Current.Components["pubsub"].Instance!).Unacknowledged(topic, appId);

    private static async Task PublishAsync(TestRuntime runtime, string topic, int n)
    {
        using var response = await runtime.Client("pub-token").PostAsync($"/v1.0/publish/pubsub/{topic}", Json($$"""{"n":{{n}}}"""));
        await StatusAsync(response, HttpStatusCode.NoContent);
    }

    private static IEnumerable<int> Numbers(IEnumerable<Batch> batches) =>
        batches.SelectMany(b => b.Entries).Select(e => e.Event.GetProperty("data").GetProperty("n").GetInt32());

    [Fact]
    public async Task Events_arrive_in_batches_and_each_entry_ends_as_its_status_says()
    {
        // n % 3 == 0: DROP; 1: SUCCESS; 2: RETRY the first time, then SUCCESS.
        var (app, batches) = await AppAsync((n, seen) => (n % 3, seen) switch
        {
            (0, _) => "DROP",
            (2, 1) => "RETRY",
            _ => "SUCCESS",
        });
        var runtime = await RuntimeAsync(AppResources.Tenant("bulk", "bulk-token", app.Address) + BulkSubscription("orders", "orders", "/orders", "bulk", 5, 200));
        await SubscribedAsync(runtime, "bulk", "orders");

        for (var n = 0; n < 12; n++)
        {
            await PublishAsync(runtime, "orders", n);
        }

        await Eventually.TrueAsync(() => Task.FromResult(Unacknowledged(runtime, "orders", "bulk") == 0), TimeSpan.FromSeconds(15), "every entry ended");
        Assert.All(batches, b =>
        {
            Assert.Equal("/orders", b.Path);
            Assert.StartsWith("application/cloudevents-batch+json", b.ContentType, StringComparison.Ordinal);
            Assert.Equal("com.dapr.event.sent.bulk", b.Envelope.GetProperty("type").GetString());
            Assert.Equal("orders", b.Envelope.GetProperty("topic").GetString());
            Assert.Equal("pubsub", b.Envelope.GetProperty("pubsubname").GetString());
            Assert.InRange(b.Entries.Count(), 1, 5);
            Assert.All(b.Entries, e => Assert.Equal("pub", e.Event.GetProperty("publisherappid").GetString()));
        });
        Assert.Contains(batches, b => b.Entries.Count() > 1);
        var delivered = Numbers(batches).GroupBy(n => n).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(Enumerable.Range(0, 12), delivered.Keys.Order());
        Assert.All(delivered, d => Assert.Equal(d.Key % 3 == 2 ? 2 : 1, d.Value)); // RETRY came back once, DROP and SUCCESS never
    }

    [Fact]
    public async Task A_programmatic_bulk_subscription_is_read_from_the_apps_answer_and_its_bounds_are_checked()
    {
        var (app, batches) = await AppAsync((_, _) => "SUCCESS",
            """[{"pubsubname":"pubsub","topic":"jobs","route":"/jobs","bulkSubscribe":{"enabled":true,"maxMessagesCount":3,"maxAwaitDurationMs":100}}]""");
        var (greedy, _) = await AppAsync((_, _) => "SUCCESS",
            """[{"pubsubname":"pubsub","topic":"jobs","route":"/jobs","bulkSubscribe":{"enabled":true,"maxMessagesCount":100000}}]""");
        var runtime = await RuntimeAsync(AppResources.Tenant("bulk", "bulk-token", app.Address) + AppResources.Tenant("greedy", "greedy-token", greedy.Address) +
            BulkSubscription("too-big", "other", "/other", "bulk", 5000, 100));
        foreach (var token in new[] { "bulk-token", "greedy-token" })
        {
            using var health = await runtime.Client(token).GetAsync("/v1.0/healthz/outbound");
            Assert.True(health.IsSuccessStatusCode);
        }
        await SubscribedAsync(runtime, "bulk", "jobs");
        Assert.Equal(new BulkSubscribeConfigView(3, 100), View(Delivery(runtime).ActiveFor("bulk").Single(s => s.Topic == "jobs")));
        // Over the bounds: the app's whole answer is refused, and so is the declared subscription.
        Assert.DoesNotContain(Delivery(runtime).ActiveFor("bulk"), s => s.Topic == "other");
        Assert.Empty(Delivery(runtime).ActiveFor("greedy"));

        for (var n = 0; n < 7; n++)
        {
            await PublishAsync(runtime, "jobs", n);
        }
        await Eventually.TrueAsync(() => Task.FromResult(Unacknowledged(runtime, "jobs", "bulk") == 0 && Numbers(batches).Count() == 7), TimeSpan.FromSeconds(10));
        Assert.All(batches, b => Assert.InRange(b.Entries.Count(), 1, 3));
    }

    private sealed record BulkSubscribeConfigView(int MaxMessagesCount, int MaxAwaitDurationMs);

    private static BulkSubscribeConfigView? View(SharedRuntime.Configuration.SubscriptionConfig subscription) =>
        subscription.BulkSubscribe is { } bulk ? new(bulk.MaxMessagesCount, (int)bulk.MaxAwaitDuration.TotalMilliseconds) : null;

    [Fact]
    public async Task A_bulk_app_that_hangs_does_not_hold_up_another_tenants_deliveries_of_the_same_topic()
    {
        var hang = new TaskCompletionSource();
        var (stuck, stuckBatches) = await AppAsync((_, _) => "SUCCESS", hang: hang);
        var received = new ConcurrentQueue<string>();
        var other = await TestApp.StartAsync(async context =>
        {
            if (context.Request.Path == "/dapr/subscribe")
            {
                context.Response.StatusCode = 404;
                return;
            }
            using var reader = new StreamReader(context.Request.Body);
            received.Enqueue(await reader.ReadToEndAsync());
        });
        _owned.Add(other);
        var runtime = await RuntimeAsync(
            AppResources.Tenant("stuck", "stuck-token", stuck.Address, "appChannel:\n  timeout: 30s") +
            AppResources.Tenant("other", "other-token", other.Address) +
            BulkSubscription("stuck-orders", "orders", "/orders", "stuck", 2, 50) +
            AppResources.Subscription("other-orders", "pubsub", "orders", "default: /orders", scopes: ["other"]));
        await SubscribedAsync(runtime, "stuck", "orders");
        await SubscribedAsync(runtime, "other", "orders");

        for (var n = 0; n < 10; n++)
        {
            await PublishAsync(runtime, "orders", n);
        }

        // The other tenant gets every event, one by one, while the stuck app holds its first batch.
        await Eventually.TrueAsync(() => Task.FromResult(received.Count == 10), TimeSpan.FromSeconds(10), "the other tenant received everything");
        // The stuck app's first batch may still be on its way (it waits up to 50 ms for a second event); it is the only one.
        await Eventually.TrueAsync(() => Task.FromResult(stuckBatches.Count > 0), TimeSpan.FromSeconds(10), "the stuck app got its first batch");
        Assert.Single(stuckBatches);
        // Two events, or one when the second was published after the batch's 50 ms wait: never more than maxMessagesCount.
        Assert.InRange(stuckBatches.Single().Entries.Count(), 1, 2);
        Assert.DoesNotContain(received, r => r.Contains("entries", StringComparison.Ordinal));
        hang.SetResult();
        await Eventually.TrueAsync(() => Task.FromResult(Unacknowledged(runtime, "orders", "stuck") == 0), TimeSpan.FromSeconds(10), "the stuck app caught up");
        Assert.Equal(Enumerable.Range(0, 10), Numbers(stuckBatches).Order());
    }
}
