using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.AppChannel;

/// <summary>Events published through the runtime reach subscriber apps: routes, app answers, dead letters, isolation.</summary>
public sealed class DeliveryTests : IAsyncLifetime
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

    /// <summary>A subscriber app that records every delivery and answers with <paramref name="answer"/>.</summary>
    private async Task<(TestApp App, ConcurrentQueue<Delivery> Deliveries)> SubscriberAsync(Func<Delivery, int, Task<(int Status, string? Body)>>? answer = null)
    {
        var deliveries = new ConcurrentQueue<Delivery>();
        var attempts = 0;
        var app = await TestApp.StartAsync(async context =>
        {
            if (context.Request.Method == "GET" && context.Request.Path == "/dapr/subscribe")
            {
                context.Response.StatusCode = 404; // no programmatic subscriptions, as an app without the route answers
                return;
            }
            using var reader = new StreamReader(context.Request.Body);
            var delivery = new Delivery(context.Request.Path.Value ?? "", context.Request.ContentType ?? "", await reader.ReadToEndAsync(), context.Request.Headers["traceparent"].ToString(),
                context.Request.Headers["dapr-publisher-app-id"].ToString());
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

    private async Task<TestRuntime> RuntimeAsync(string yaml, IReadOnlyDictionary<string, string>? pubsubMetadata = null)
    {
        var runtime = await TestRuntime.StartAsync(AppResources.InMemoryPubSub("pubsub", pubsubMetadata) + yaml);
        _owned.Add(runtime);
        return runtime;
    }

    public sealed record Delivery(string Path, string ContentType, string Body, string TraceParent, string Publisher = "")
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

    /// <summary>The app's SDK checks its runtime's health, as it does at start-up: the runtime asks the app for its subscriptions.</summary>
    private static async Task ShowsItIsUpAsync(TestRuntime runtime, string token)
    {
        using var response = await runtime.Client(token).GetAsync("/v1.0/healthz/outbound");
        await StatusAsync(response, HttpStatusCode.NoContent);
    }

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
        await ShowsItIsUpAsync(runtime, "auditor-token");
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
            AppResources.Subscription("jobs", "pubsub", "jobs", "default: /jobs"),
            new Dictionary<string, string> { ["maxDeliveryAttempts"] = "1000" });
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

    private static SharedRuntime.Components.IPubSubBroker Broker(TestRuntime runtime) =>
        (SharedRuntime.Components.IPubSubBroker)runtime.Configuration.Current.Components["pubsub"].Instance!;

    private static async Task<string> MetricsAsync(TestRuntime runtime)
    {
        using var client = new HttpClient();
        return await client.GetStringAsync(new Uri(runtime.MetricsAddress, "/metrics"));
    }

    private static bool Counted(string metrics, string appId, string outcome) =>
        metrics.Split('\n').Any(line => line.StartsWith("sharedruntime_deliveries_total{", StringComparison.Ordinal) &&
            line.Contains($"app_id=\"{appId}\"", StringComparison.Ordinal) && line.Contains($"outcome=\"{outcome}\"", StringComparison.Ordinal));

    private static string RawSubscription(string name, string topic, string path, string? deadLetterTopic = null) =>
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
          metadata:
            rawPayload: "true"
        {(deadLetterTopic is null ? "" : $"  deadLetterTopic: {deadLetterTopic}\n")}---

        """;

    [Fact]
    public async Task A_raw_subscription_gets_an_event_whose_content_type_is_not_a_media_type_wrapped_as_octet_stream()
    {
        var (app, deliveries) = await SubscriberAsync();
        var runtime = await RuntimeAsync(
            AppResources.Tenant("worker", "worker-token", app.Address) +
            RawSubscription("raw", "raw-jobs", "/raw", deadLetterTopic: "raw-dead") +
            AppResources.Subscription("dead", "pubsub", "raw-dead", "default: /dead"));
        await WaitForSubscriptionAsync(runtime, "worker", "raw-jobs");

        // As a foreign publisher on a shared broker would leave it: the runtime's own publish API refuses such a content type.
        await Broker(runtime).PublishAsync(new SharedRuntime.Components.PubSubMessage("raw-jobs", "poison"u8.ToArray(), "not a media type;;", new Dictionary<string, string>()) { PublisherAppId = "worker" }, default);

        await Eventually.TrueAsync(() => Task.FromResult(deliveries.Any(d => d.Path == "/raw")), TimeSpan.FromSeconds(10), "the raw event was delivered");
        await SettledAsync(runtime, "raw-jobs", "worker");
        var raw = deliveries.Single(d => d.Path == "/raw");
        Assert.Equal("application/cloudevents+json", raw.ContentType);
        Assert.Equal("application/octet-stream", raw.Event.GetProperty("datacontenttype").GetString());
        Assert.Equal("poison", System.Text.Encoding.UTF8.GetString(raw.Event.GetProperty("data_base64").GetBytesFromBase64()));
        Assert.Equal("worker", raw.Publisher);
        Assert.DoesNotContain(deliveries, d => d.Path == "/dead");

        var content = new ByteArrayContent("x"u8.ToArray());
        content.Headers.TryAddWithoutValidation("Content-Type", "not a media type;;");
        using var refused = await runtime.Client("worker-token").PostAsync("/v1.0/publish/pubsub/raw-jobs?metadata.rawPayload=true", content);
        await ErrorAsync(refused, HttpStatusCode.BadRequest, "ERR_MALFORMED_REQUEST");
    }

    [Fact]
    public async Task A_poison_event_without_a_dead_letter_topic_is_dropped_with_a_log_line_and_a_metric()
    {
        var (app, deliveries) = await SubscriberAsync();
        var runtime = await RuntimeAsync(
            AppResources.Tenant("worker", "worker-token", app.Address) +
            AppResources.Subscription("ce", "pubsub", "ce-jobs", "default: /ce"));
        await WaitForSubscriptionAsync(runtime, "worker", "ce-jobs");

        var broker = Broker(runtime);
        await broker.PublishAsync(new SharedRuntime.Components.PubSubMessage("ce-jobs", "{not json"u8.ToArray(), "application/cloudevents+json", new Dictionary<string, string>()), default);
        await broker.PublishAsync(new SharedRuntime.Components.PubSubMessage("ce-jobs", "[1]"u8.ToArray(), "application/cloudevents+json", new Dictionary<string, string>()), default);

        await SettledAsync(runtime, "ce-jobs", "worker");
        Assert.Empty(deliveries);
        Assert.True(Counted(await MetricsAsync(runtime), "worker", "poison_dropped"));
        await PublishAsync(runtime, "worker-token", "ce-jobs", """{"n":1}""");
        await Eventually.TrueAsync(() => Task.FromResult(deliveries.Count == 1), TimeSpan.FromSeconds(10), "the subscription goes on");
    }

    [Fact]
    public async Task An_event_the_app_keeps_failing_ends_after_maxDeliveryAttempts()
    {
        var (app, deliveries) = await SubscriberAsync((_, _) => Task.FromResult<(int, string?)>((500, null)));
        var runtime = await RuntimeAsync(
            AppResources.Tenant("worker", "worker-token", app.Address) +
            AppResources.Subscription("jobs", "pubsub", "jobs", "default: /jobs"),
            new Dictionary<string, string> { ["maxDeliveryAttempts"] = "4" });
        await WaitForSubscriptionAsync(runtime, "worker", "jobs");

        await PublishAsync(runtime, "worker-token", "jobs", """{"id":"never"}""");

        await SettledAsync(runtime, "jobs", "worker");
        Assert.Equal(4, deliveries.Count);
        Assert.True(Counted(await MetricsAsync(runtime), "worker", "attempts_exhausted"));
    }

    [Fact]
    public async Task The_subscriber_sees_the_real_publisher_whatever_the_event_claims()
    {
        var (app, deliveries) = await SubscriberAsync();
        var runtime = await RuntimeAsync(
            AppResources.Tenant("bystander", "bystander-token", app.Address) +
            AppResources.Tenant("attacker", "attacker-token", null) +
            AppResources.Subscription("news", "pubsub", "news", "default: /news", scopes: ["bystander"]) +
            RawSubscription("raw-news", "raw-news", "/raw"));
        await WaitForSubscriptionAsync(runtime, "bystander", "news");
        await WaitForSubscriptionAsync(runtime, "bystander", "raw-news");
        var attacker = runtime.Client("attacker-token");
        const string forged = """{"id":"forged","source":"bystander","publisherappid":"bystander","type":"t","specversion":"1.0","traceparent":"00-not-a-trace\r\nx: y","data":{"n":1}}""";

        // A CloudEvent of its own, the same as a raw payload, and a wrapped payload with a bad traceparent header.
        using (var ce = new StringContent(forged, System.Text.Encoding.UTF8))
        {
            ce.Headers.ContentType = new("application/cloudevents+json");
            await StatusAsync(await attacker.PostAsync("/v1.0/publish/pubsub/news", ce), HttpStatusCode.NoContent);
        }
        using (var raw = new StringContent(forged, System.Text.Encoding.UTF8))
        {
            raw.Headers.ContentType = new("application/cloudevents+json");
            await StatusAsync(await attacker.PostAsync("/v1.0/publish/pubsub/news?metadata.rawPayload=true", raw), HttpStatusCode.NoContent);
        }
        using (var wrapped = new HttpRequestMessage(HttpMethod.Post, "/v1.0/publish/pubsub/news") { Content = Json("""{"n":2}""") })
        {
            wrapped.Headers.TryAddWithoutValidation("traceparent", "00-00000000000000000000000000000000-0000000000000000-01");
            await StatusAsync(await attacker.SendAsync(wrapped), HttpStatusCode.NoContent);
        }
        await StatusAsync(await attacker.PostAsync("/v1.0/publish/pubsub/raw-news?metadata.rawPayload=true", new StringContent("raw bytes")), HttpStatusCode.NoContent);

        await Eventually.TrueAsync(() => Task.FromResult(deliveries.Count == 4), TimeSpan.FromSeconds(10));
        Assert.All(deliveries, d => Assert.Equal("attacker", d.Publisher));
        foreach (var delivery in deliveries.Where(d => d.Path == "/news"))
        {
            var named = delivery.Event.EnumerateObject().Where(p => p.Name == "publisherappid").ToList();
            Assert.Equal("attacker", Assert.Single(named).Value.GetString());
            Assert.Matches("^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$", delivery.TraceParent);
            Assert.NotEqual("00-00000000000000000000000000000000-0000000000000000-01", delivery.TraceParent);
        }
        // Dapr keeps an app's own CloudEvent fields: source is what the publisher wrote; publisherappid is the runtime's.
        Assert.Contains(deliveries, d => d.Path == "/news" && d.Event.GetProperty("source").GetString() == "bystander");
        // A raw subscription gets the raw message wrapped in a CloudEvent, as Dapr does; the publisher is the runtime's word.
        var rawEvent = deliveries.Single(d => d.Path == "/raw").Event;
        Assert.Equal("raw bytes", System.Text.Encoding.UTF8.GetString(rawEvent.GetProperty("data_base64").GetBytesFromBase64()));
        Assert.Equal("attacker", rawEvent.GetProperty("publisherappid").GetString());
    }

    [Fact]
    public async Task A_programmatic_subscription_to_a_protected_or_out_of_scope_topic_is_refused()
    {
        var discovered = new ConcurrentQueue<string>();
        var app = await TestApp.StartAsync(async context =>
        {
            if (context.Request.Method == "GET" && context.Request.Path == "/dapr/subscribe")
            {
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync("""
                    [{"pubsubname":"pubsub","topic":"payments","route":"/payments"},
                     {"pubsubname":"guarded","topic":"internal","route":"/internal"},
                     {"pubsubname":"guarded","topic":"audit","route":"/audit"},
                     {"pubsubname":"pubsub","topic":"jobs","route":"/jobs","deadLetterTopic":"payments"},
                     {"pubsubname":"pubsub","topic":"open","route":"/open"}]
                    """);
                return;
            }
            discovered.Enqueue(context.Request.Path.Value ?? "");
        });
        _owned.Add(app);
        var runtime = await RuntimeAsync(
            AppResources.Tenant("snoop", "snoop-token", app.Address, """
                appChannel:
                  discoverSubscriptions: true
                """) +
            Resources.Component("guarded", "pubsub.in-memory", new Dictionary<string, string> { ["subscriptionScopes"] = "snoop=audit" }),
            new Dictionary<string, string> { ["protectedTopics"] = "payments" });
        await ShowsItIsUpAsync(runtime, "snoop-token");
        await WaitForSubscriptionAsync(runtime, "snoop", "open");
        await WaitForSubscriptionAsync(runtime, "snoop", "audit");

        var delivery = (SharedRuntime.AppChannel.SubscriptionDelivery)runtime.App.Services.GetService(typeof(SharedRuntime.AppChannel.SubscriptionDelivery))!;
        Assert.Equal(["audit", "open"], delivery.ActiveFor("snoop").Select(s => s.Topic).Order());
        using var metadata = JsonDocument.Parse(await runtime.Client("snoop-token").GetStringAsync("/v1.0/metadata"));
        Assert.DoesNotContain(metadata.RootElement.GetProperty("subscriptions").EnumerateArray(), s => s.GetProperty("topic").GetString() is "payments" or "internal" or "jobs");
    }
}
