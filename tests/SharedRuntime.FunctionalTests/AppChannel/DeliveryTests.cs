using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.AppChannel;

/// <summary>Events published through the runtime reach subscriber apps: routes, app answers, dead letters, isolation.</summary>
public sealed class DeliveryTests : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _owned = [];

    public async ValueTask DisposeAsync()
    {
        foreach (var owned in Enumerable.Reverse(_owned))
        {
            await owned.DisposeAsync();
        }
    }

    /// <summary>A subscriber app that records every delivery and answers with <paramref name="answer"/>.</summary>
    private async Task<(TestApp App, ConcurrentQueue<Delivery> Deliveries)> SubscriberAsync(Func<Delivery, int, Task<(int Status, string? Body)>>? answer = null)
    {
        var deliveries = new ConcurrentQueue<Delivery>();
        var attempts = 0;
        var app = await TestApp.StartAsync(async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var delivery = new Delivery(context.Request.Path.Value ?? "", context.Request.ContentType ?? "", await reader.ReadToEndAsync(), context.Request.Headers["traceparent"].ToString());
            deliveries.Enqueue(delivery);
            var (status, body) = answer is null ? (200, null) : await answer(delivery, Interlocked.Increment(ref attempts));
            context.Response.StatusCode = status;
            if (body is not null)
            {
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync(body);
            }
        });
        _owned.Add(app);
        return (app, deliveries);
    }

    private async Task<TestRuntime> RuntimeAsync(string yaml)
    {
        var runtime = await TestRuntime.StartAsync(AppResources.InMemoryPubSub("pubsub") + yaml);
        _owned.Add(runtime);
        return runtime;
    }

    public sealed record Delivery(string Path, string ContentType, string Body, string TraceParent)
    {
        public JsonElement Event => JsonDocument.Parse(Body).RootElement;
    }

    private static async Task PublishAsync(TestRuntime runtime, string token, string topic, string json, string pubsub = "pubsub")
    {
        using var response = await runtime.Client(token).PostAsync($"/v1.0/publish/{pubsub}/{topic}", Json(json));
        await StatusAsync(response, HttpStatusCode.NoContent);
    }

    /// <summary>
    /// Waits until consumer group <paramref name="appId"/> has acknowledged every message of <paramref name="topic"/>:
    /// from then on nothing of it can be delivered again, so counts of deliveries are final.
    /// </summary>
    private static Task SettledAsync(TestRuntime runtime, string topic, string appId) =>
        Eventually.TrueAsync(() => Task.FromResult(Unacknowledged(runtime, topic, appId) == 0), TimeSpan.FromSeconds(10), $"{appId} acknowledged everything on {topic}");

    private static int Unacknowledged(TestRuntime runtime, string topic, string appId) =>
        ((SharedRuntime.Components.PubSub.InMemoryBroker)runtime.Configuration.Current.Components["pubsub"].Instance!).Unacknowledged(topic, appId);

    private static Task WaitForSubscriptionAsync(TestRuntime runtime, string appId, string topic) =>
        Eventually.TrueAsync(() => Task.FromResult(runtime.App.Services.GetService(typeof(SharedRuntime.AppChannel.SubscriptionDelivery)) is SharedRuntime.AppChannel.SubscriptionDelivery d &&
            d.ActiveFor(appId).Any(s => s.Topic == topic)), TimeSpan.FromSeconds(10), $"{appId} subscribed to {topic}");

    [Fact]
    public async Task A_declarative_subscription_routes_events_by_rule_and_default()
    {
        var (app, deliveries) = await SubscriberAsync();
        var runtime = await RuntimeAsync(
            AppResources.Tenant("shop", "shop-token", app.Address) +
            AppResources.Subscription("orders-sub", "pubsub", "orders", """
                rules:
                  - match: event.data.kind == "widget"
                    path: /widgets
                default: /orders
                """));
        await WaitForSubscriptionAsync(runtime, "shop", "orders");

        await PublishAsync(runtime, "shop-token", "orders", """{"kind":"widget","n":1}""");
        await PublishAsync(runtime, "shop-token", "orders", """{"kind":"gadget","n":2}""");
        await Eventually.TrueAsync(() => Task.FromResult(deliveries.Count >= 2), TimeSpan.FromSeconds(10));

        var widget = deliveries.Single(d => d.Path == "/widgets");
        var gadget = deliveries.Single(d => d.Path == "/orders");
        Assert.Equal("application/cloudevents+json", widget.ContentType);
        Assert.Equal(1, widget.Event.GetProperty("data").GetProperty("n").GetInt32());
        Assert.Equal("orders", widget.Event.GetProperty("topic").GetString());
        Assert.Equal("shop", widget.Event.GetProperty("source").GetString());
        Assert.Equal(widget.Event.GetProperty("traceparent").GetString(), widget.TraceParent);
        Assert.Equal(2, gadget.Event.GetProperty("data").GetProperty("n").GetInt32());
    }

    [Fact]
    public async Task A_v1alpha1_subscription_and_a_programmatic_one_both_deliver()
    {
        var (declared, declaredDeliveries) = await SubscriberAsync();
        var programmaticDeliveries = new ConcurrentQueue<string>();
        var programmatic = await TestApp.StartAsync(async context =>
        {
            if (context.Request.Method == "GET" && context.Request.Path == "/dapr/subscribe")
            {
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync("""[{"PubsubName":"pubsub","Topic":"audit","Route":"/audit-events"}]""");
                return;
            }
            programmaticDeliveries.Enqueue(context.Request.Path.Value ?? "");
        });
        _owned.Add(programmatic);
        var runtime = await RuntimeAsync(
            AppResources.Tenant("declared", "declared-token", declared.Address) +
            AppResources.Tenant("auditor", "auditor-token", programmatic.Address, """
                appChannel:
                  discoverSubscriptions: true
                """) +
            """
            apiVersion: dapr.io/v1alpha1
            kind: Subscription
            metadata:
              name: legacy
            spec:
              pubsubname: pubsub
              topic: audit
              route: /legacy
            scopes:
              - declared
            """);
        await WaitForSubscriptionAsync(runtime, "declared", "audit");
        await WaitForSubscriptionAsync(runtime, "auditor", "audit");

        await PublishAsync(runtime, "declared-token", "audit", """{"who":"me"}""");

        await Eventually.TrueAsync(() => Task.FromResult(declaredDeliveries.Count == 1 && programmaticDeliveries.Count == 1), TimeSpan.FromSeconds(10));
        Assert.Equal("/legacy", declaredDeliveries.Single().Path);
        Assert.Equal("/audit-events", programmaticDeliveries.Single());
    }

    [Fact]
    public async Task Retry_redelivers_until_success_and_success_acknowledges_once()
    {
        var (app, deliveries) = await SubscriberAsync((_, attempt) => Task.FromResult<(int, string?)>(attempt < 3 ? (200, """{"status":"RETRY"}""") : (200, """{"status":"SUCCESS"}""")));
        var runtime = await RuntimeAsync(
            AppResources.Tenant("worker", "worker-token", app.Address) +
            AppResources.Subscription("jobs", "pubsub", "jobs", "default: /jobs"));
        await WaitForSubscriptionAsync(runtime, "worker", "jobs");

        await PublishAsync(runtime, "worker-token", "jobs", """{"id":1}""");

        await Eventually.TrueAsync(() => Task.FromResult(deliveries.Count >= 3), TimeSpan.FromSeconds(10));
        await SettledAsync(runtime, "jobs", "worker"); // acknowledged: a success is not delivered again
        Assert.Equal(3, deliveries.Count);
        Assert.Single(deliveries.Select(d => d.Event.GetProperty("id").GetString()).Distinct());
    }

    [Theory]
    [InlineData(200, """{"status":"DROP"}""")]
    [InlineData(500, null)]
    public async Task A_dropped_or_failing_event_goes_to_the_dead_letter_topic(int status, string? body)
    {
        var (app, deliveries) = await SubscriberAsync((d, _) => Task.FromResult<(int, string?)>(d.Path == "/dead" ? (200, null) : (status, body)));
        var runtime = await RuntimeAsync(
            AppResources.Tenant("worker", "worker-token", app.Address) +
            AppResources.Subscription("jobs", "pubsub", "jobs", "default: /jobs", deadLetterTopic: "jobs-dead") +
            AppResources.Subscription("dead", "pubsub", "jobs-dead", "default: /dead") +
            """
            apiVersion: dapr.io/v1alpha1
            kind: Resiliency
            metadata:
              name: delivery
            spec:
              policies:
                retries:
                  twice:
                    policy: constant
                    duration: 10ms
                    maxRetries: 2
              targets:
                components:
                  pubsub:
                    inbound:
                      retry: twice
            """);
        await WaitForSubscriptionAsync(runtime, "worker", "jobs");
        await WaitForSubscriptionAsync(runtime, "worker", "jobs-dead");

        await PublishAsync(runtime, "worker-token", "jobs", """{"id":"poison"}""");

        await Eventually.TrueAsync(() => Task.FromResult(deliveries.Any(d => d.Path == "/dead")), TimeSpan.FromSeconds(10));
        await SettledAsync(runtime, "jobs", "worker");
        await SettledAsync(runtime, "jobs-dead", "worker");
        var attempts = deliveries.Count(d => d.Path == "/jobs");
        Assert.Equal(status == 500 ? 3 : 1, attempts);
        Assert.Single(deliveries, d => d.Path == "/dead");
        Assert.Equal("poison", deliveries.Single(d => d.Path == "/dead").Event.GetProperty("data").GetProperty("id").GetString());

        using var metrics = new HttpClient();
        var text = await metrics.GetStringAsync(new Uri(runtime.MetricsAddress, "/metrics"));
        Assert.Contains(text.Split('\n'), line => line.StartsWith("sharedruntime_deliveries_total{", StringComparison.Ordinal) &&
            line.Contains("app_id=\"worker\"", StringComparison.Ordinal) && line.Contains("outcome=\"dead_lettered\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_subscription_file_added_or_removed_while_running_starts_or_stops_delivery()
    {
        var (app, deliveries) = await SubscriberAsync();
        var runtime = await RuntimeAsync(AppResources.Tenant("late", "late-token", app.Address));

        await runtime.WriteResourceAsync("subscription.yaml", AppResources.Subscription("late-sub", "pubsub", "late", "default: /late"));
        await WaitForSubscriptionAsync(runtime, "late", "late");
        await PublishAsync(runtime, "late-token", "late", """{"n":1}""");
        await Eventually.TrueAsync(() => Task.FromResult(deliveries.Count == 1), TimeSpan.FromSeconds(10));

        runtime.DeleteResource("subscription.yaml");
        var delivery = (SharedRuntime.AppChannel.SubscriptionDelivery)runtime.App.Services.GetService(typeof(SharedRuntime.AppChannel.SubscriptionDelivery))!;
        await Eventually.TrueAsync(() => Task.FromResult(delivery.ActiveFor("late").Count == 0), TimeSpan.FromSeconds(10), "the subscription is gone");
        await PublishAsync(runtime, "late-token", "late", """{"n":2}""");
        // The stopped subscription's group keeps the event for a later subscriber; nobody delivers it now.
        Assert.Equal(1, Unacknowledged(runtime, "late", "late"));
        Assert.Single(deliveries);
    }

    [Fact]
    public async Task An_app_answering_404_drops_the_event_without_retrying()
    {
        var (app, deliveries) = await SubscriberAsync((_, _) => Task.FromResult<(int, string?)>((404, null)));
        var runtime = await RuntimeAsync(
            AppResources.Tenant("worker", "worker-token", app.Address) +
            AppResources.Subscription("jobs", "pubsub", "jobs", "default: /jobs"));
        await WaitForSubscriptionAsync(runtime, "worker", "jobs");

        await PublishAsync(runtime, "worker-token", "jobs", """{"id":1}""");
        await Eventually.TrueAsync(() => Task.FromResult(deliveries.Count >= 1), TimeSpan.FromSeconds(10));
        await SettledAsync(runtime, "jobs", "worker");
        Assert.Single(deliveries);
    }

    [Fact]
    public async Task A_failing_subscriber_without_dead_letter_keeps_the_event_until_it_recovers()
    {
        var healthy = false;
        var (app, deliveries) = await SubscriberAsync((_, _) => Task.FromResult<(int, string?)>(Volatile.Read(ref healthy) ? (200, null) : (503, null)));
        var runtime = await RuntimeAsync(
            AppResources.Tenant("worker", "worker-token", app.Address) +
            AppResources.Subscription("jobs", "pubsub", "jobs", "default: /jobs"));
        await WaitForSubscriptionAsync(runtime, "worker", "jobs");

        await PublishAsync(runtime, "worker-token", "jobs", """{"id":"keep"}""");
        await Eventually.TrueAsync(() => Task.FromResult(deliveries.Count >= 3), TimeSpan.FromSeconds(10));
        Assert.Equal(1, Unacknowledged(runtime, "jobs", "worker")); // kept in the broker while the app fails
        Volatile.Write(ref healthy, true);
        var failedSoFar = deliveries.Count;
        await Eventually.TrueAsync(() => Task.FromResult(deliveries.Count > failedSoFar), TimeSpan.FromSeconds(10), "the event is delivered once the app is back");
        await SettledAsync(runtime, "jobs", "worker");
    }

    [Fact]
    public async Task Every_tenant_gets_its_own_copy_and_only_of_what_it_subscribed_to()
    {
        var (a, aDeliveries) = await SubscriberAsync();
        var (b, bDeliveries) = await SubscriberAsync();
        var (c, cDeliveries) = await SubscriberAsync();
        var runtime = await RuntimeAsync(
            AppResources.Tenant("alpha", "alpha-token", a.Address) +
            AppResources.Tenant("beta", "beta-token", b.Address) +
            AppResources.Tenant("gamma", "gamma-token", c.Address) +
            AppResources.Subscription("news", "pubsub", "news", "default: /news", scopes: ["alpha", "beta"]));
        await WaitForSubscriptionAsync(runtime, "alpha", "news");
        await WaitForSubscriptionAsync(runtime, "beta", "news");

        for (var i = 0; i < 5; i++)
        {
            await PublishAsync(runtime, "gamma-token", "news", $$"""{"i":{{i}}}""");
        }

        await Eventually.TrueAsync(() => Task.FromResult(aDeliveries.Count == 5 && bDeliveries.Count == 5), TimeSpan.FromSeconds(10));
        await SettledAsync(runtime, "news", "alpha");
        await SettledAsync(runtime, "news", "beta");
        var delivery = (SharedRuntime.AppChannel.SubscriptionDelivery)runtime.App.Services.GetService(typeof(SharedRuntime.AppChannel.SubscriptionDelivery))!;
        Assert.Empty(delivery.ActiveFor("gamma")); // the subscription is scoped to alpha and beta
        Assert.Empty(cDeliveries);
        Assert.Equal(5, aDeliveries.Count);
        Assert.Equal(5, bDeliveries.Count);

        // Each tenant's metadata lists its own subscriptions only.
        using var alphaMetadata = JsonDocument.Parse(await runtime.Client("alpha-token").GetStringAsync("/v1.0/metadata"));
        var subscription = Assert.Single(alphaMetadata.RootElement.GetProperty("subscriptions").EnumerateArray());
        Assert.Equal(("pubsub", "news", "DECLARATIVE"), (subscription.GetProperty("pubsubname").GetString(), subscription.GetProperty("topic").GetString(), subscription.GetProperty("type").GetString()));
        Assert.Equal("/news", subscription.GetProperty("rules")[0].GetProperty("path").GetString());
        using var gammaMetadata = JsonDocument.Parse(await runtime.Client("gamma-token").GetStringAsync("/v1.0/metadata"));
        Assert.Empty(gammaMetadata.RootElement.GetProperty("subscriptions").EnumerateArray());
    }

    [Fact]
    public async Task A_hung_subscriber_does_not_delay_another_tenants_deliveries()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var (hung, hungDeliveries) = await SubscriberAsync(async (_, _) =>
        {
            await release.Task;
            return (200, null);
        });
        var (quick, quickDeliveries) = await SubscriberAsync();
        var runtime = await RuntimeAsync(
            AppResources.Tenant("stuck", "stuck-token", hung.Address, """
                appChannel:
                  maxConcurrency: 2
                  timeout: 30s
                """) +
            AppResources.Tenant("lively", "lively-token", quick.Address) +
            AppResources.Subscription("news", "pubsub", "news", "default: /news"));
        try
        {
            await WaitForSubscriptionAsync(runtime, "stuck", "news");
            await WaitForSubscriptionAsync(runtime, "lively", "news");

            for (var i = 0; i < 50; i++)
            {
                await PublishAsync(runtime, "lively-token", "news", $$"""{"i":{{i}}}""");
            }

            await Eventually.TrueAsync(() => Task.FromResult(quickDeliveries.Count == 50), TimeSpan.FromSeconds(10), "the lively tenant gets all 50 events while the other app hangs");
            Assert.Equal(2, hungDeliveries.Count); // its own two slots, and nothing more in flight
        }
        finally
        {
            release.TrySetResult();
        }
        await Eventually.TrueAsync(() => Task.FromResult(hungDeliveries.Count == 50), TimeSpan.FromSeconds(20), "the hung app gets every event once it answers again");
    }
}
