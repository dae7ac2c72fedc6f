using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SharedRuntime.AppChannel;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.AppChannel;

/// <summary>
/// Programmatic subscriptions are on by default: the app is asked <c>GET /dapr/subscribe</c> when it shows it is up
/// (a health check or a first request with its token), again when it may have changed, and never without a reason.
/// </summary>
public sealed class SubscriptionDiscoveryTests : IAsyncLifetime
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

    /// <summary>An app that subscribes to <paramref name="topics"/> (read at each ask) and records what it receives and every request.</summary>
    private sealed class SubscriberApp
    {
        public volatile string[] Topics = [];
        public ConcurrentQueue<string> Received { get; } = new();
        public int Asks;
        public int Requests;

        public async Task HandleAsync(HttpContext context)
        {
            Interlocked.Increment(ref Requests);
            if (context.Request.Method == "GET" && context.Request.Path == "/dapr/subscribe")
            {
                Interlocked.Increment(ref Asks);
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync("[" + string.Join(",", Topics.Select(t => $$"""{"pubsubname":"pubsub","topic":"{{t}}","route":"/on/{{t}}"}""")) + "]");
                return;
            }
            Received.Enqueue(context.Request.Path.Value ?? "");
        }
    }

    private async Task<TestApp> AppAsync(SubscriberApp app, int? port = null)
    {
        var started = await TestApp.StartAsync(app.HandleAsync, port);
        _owned.Add(started);
        return started;
    }

    private async Task<TestRuntime> RuntimeAsync(string yaml, TimeSpan? silence = null)
    {
        var runtime = await TestRuntime.StartAsync(new Dictionary<string, string> { ["resources.yaml"] = AppResources.InMemoryPubSub("pubsub") + yaml }, services: silence is null ? null : s =>
            s.AddSingleton(sp => new SubscriptionDiscovery(sp.GetRequiredService<AppChannels>(), TimeProvider.System, sp.GetRequiredService<ILogger<SubscriptionDiscovery>>())
            {
                SilenceBeforeAsk = silence.Value,
            }));
        _owned.Add(runtime);
        return runtime;
    }

    private static SubscriptionDelivery Delivery(TestRuntime runtime) => runtime.App.Services.GetRequiredService<SubscriptionDelivery>();

    private static string[] Topics(TestRuntime runtime, string appId) => [.. Delivery(runtime).ActiveFor(appId).Select(s => s.Topic).Order()];

    private static async Task HealthCheckAsync(TestRuntime runtime, string token)
    {
        using var response = await runtime.Client(token).GetAsync("/v1.0/healthz/outbound");
        await StatusAsync(response, HttpStatusCode.NoContent);
    }

    private static async Task PublishAsync(TestRuntime runtime, string token, string topic)
    {
        using var response = await runtime.Client(token).PostAsync($"/v1.0/publish/pubsub/{topic}", Json("""{"n":1}"""));
        await StatusAsync(response, HttpStatusCode.NoContent);
    }

    [Fact]
    public async Task An_app_restarted_on_the_same_endpoint_with_a_new_topic_receives_it_within_5s_of_its_first_call()
    {
        var v1 = new SubscriberApp { Topics = ["old"] };
        var first = await AppAsync(v1);
        var runtime = await RuntimeAsync(AppResources.Tenant("fn", "fn-token", first.Address) + AppResources.Tenant("pub", "pub-token", null));
        await HealthCheckAsync(runtime, "fn-token");
        await Eventually.TrueAsync(() => Task.FromResult(Topics(runtime, "fn").SequenceEqual(["old"])), TimeSpan.FromSeconds(10), "v1's topic subscribed");

        await first.DisposeAsync();
        _owned.Remove(first);
        var v2 = new SubscriberApp { Topics = ["new"] };
        await AppAsync(v2, first.Address.Port);

        var clock = Stopwatch.StartNew();
        await HealthCheckAsync(runtime, "fn-token"); // the SDK waiting for its runtime at start-up
        await Eventually.TrueAsync(async () =>
        {
            if (Topics(runtime, "fn").Contains("new"))
            {
                await PublishAsync(runtime, "pub-token", "new");
            }
            return v2.Received.Contains("/on/new");
        }, TimeSpan.FromSeconds(5) - clock.Elapsed, "v2 received its new topic within 5 s of its first call");
        await Eventually.TrueAsync(() => Task.FromResult(Topics(runtime, "fn").SequenceEqual(["new"])), TimeSpan.FromSeconds(5), "v1's topic unsubscribed");
    }

    [Fact]
    public async Task Without_traffic_the_runtime_sends_nothing_to_the_app()
    {
        var quiet = new SubscriberApp { Topics = ["orders"] };
        var optedOut = new SubscriberApp { Topics = ["orders"] };
        var quietApp = await AppAsync(quiet);
        var optedOutApp = await AppAsync(optedOut);
        var runtime = await RuntimeAsync(
            AppResources.Tenant("quiet", "quiet-token", quietApp.Address) +
            AppResources.Tenant("out", "out-token", optedOutApp.Address, """
                appChannel:
                  discoverSubscriptions: false
                """));

        // A quiet period with a configuration reload in it: nothing reaches either app.
        await runtime.WriteResourceAsync("later.yaml", Resources.Component("later", "state.in-memory"));
        await runtime.WaitForConfigurationAsync(s => s.Components.ContainsKey("later"));
        using (var quietPeriod = new CancellationTokenSource(TimeSpan.FromSeconds(3)))
        {
            await Task.Delay(Timeout.Infinite, quietPeriod.Token).ContinueWith(_ => { }, TaskScheduler.Default);
        }
        Assert.Equal(0, Volatile.Read(ref quiet.Requests));
        Assert.Equal(0, Volatile.Read(ref optedOut.Requests));

        // A tenant that opted out is not asked even when it shows it is up; the other is.
        await HealthCheckAsync(runtime, "out-token");
        await HealthCheckAsync(runtime, "quiet-token");
        await Eventually.TrueAsync(() => Task.FromResult(Topics(runtime, "quiet").SequenceEqual(["orders"])), TimeSpan.FromSeconds(10));
        Assert.Empty(Topics(runtime, "out"));
        Assert.Equal(0, Volatile.Read(ref optedOut.Requests));
    }

    [Fact]
    public async Task An_app_that_was_not_up_when_asked_is_asked_again_soon_after()
    {
        var late = new SubscriberApp { Topics = ["orders"] };
        var port = TestRuntime.FreePorts(1)[0];
        var runtime = await RuntimeAsync(AppResources.Tenant("late", "late-token", new Uri($"http://127.0.0.1:{port}")));
        var discovery = runtime.App.Services.GetRequiredService<SubscriptionDiscovery>();

        await HealthCheckAsync(runtime, "late-token"); // the SDK is up before the app listens
        await Eventually.TrueAsync(() => Task.FromResult(discovery.Asks >= 2), TimeSpan.FromSeconds(10), "a failed ask retried");
        await AppAsync(late, port);

        await Eventually.TrueAsync(() => Task.FromResult(Topics(runtime, "late").SequenceEqual(["orders"])), TimeSpan.FromSeconds(10), "asked again once it listens");
    }

    [Fact]
    public async Task A_request_after_a_silence_asks_again_and_one_within_it_does_not()
    {
        var app = new SubscriberApp { Topics = ["a"] };
        var started = await AppAsync(app);
        var runtime = await RuntimeAsync(AppResources.Tenant("fn", "fn-token", started.Address), silence: TimeSpan.FromSeconds(1));
        var client = runtime.Client("fn-token");

        using (var response = await client.GetAsync("/v1.0/metadata")) { Assert.True(response.IsSuccessStatusCode); }
        await Eventually.TrueAsync(() => Task.FromResult(Topics(runtime, "fn").SequenceEqual(["a"])), TimeSpan.FromSeconds(10));
        Assert.Equal(1, Volatile.Read(ref app.Asks));

        app.Topics = ["a", "b"];
        using (var response = await client.GetAsync("/v1.0/metadata")) { Assert.True(response.IsSuccessStatusCode); }
        Assert.Equal(1, Volatile.Read(ref app.Asks)); // within the silence: the app is not asked

        using (var silence = new CancellationTokenSource(TimeSpan.FromSeconds(1.5)))
        {
            await Task.Delay(Timeout.Infinite, silence.Token).ContinueWith(_ => { }, TaskScheduler.Default);
        }
        using (var response = await client.GetAsync("/v1.0/metadata")) { Assert.True(response.IsSuccessStatusCode); }
        await Eventually.TrueAsync(() => Task.FromResult(Topics(runtime, "fn").SequenceEqual(["a", "b"])), TimeSpan.FromSeconds(10), "asked again after the silence");
    }

    [Fact]
    public async Task Another_tenants_health_checks_never_reach_this_app_and_ask_its_own_at_a_bounded_pace()
    {
        var owner = new SubscriberApp { Topics = ["orders"] };
        var noisy = new SubscriberApp { Topics = ["orders"] };
        var ownerApp = await AppAsync(owner);
        var noisyApp = await AppAsync(noisy);
        var runtime = await RuntimeAsync(
            AppResources.Tenant("owner", "owner-token", ownerApp.Address) +
            AppResources.Tenant("noisy", "noisy-token", noisyApp.Address));

        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 100; i++)
        {
            await HealthCheckAsync(runtime, "noisy-token");
        }
        await Eventually.TrueAsync(() => Task.FromResult(Topics(runtime, "noisy").SequenceEqual(["orders"])), TimeSpan.FromSeconds(10));
        var elapsed = clock.Elapsed;

        Assert.Equal(0, Volatile.Read(ref owner.Requests));
        // One ask at a time and at most one a second: a flood of checks costs the tenant's own app little.
        Assert.InRange(Volatile.Read(ref noisy.Asks), 1, (int)Math.Ceiling(elapsed / SubscriptionDiscovery.MinPause) + 2);

        // The owner's events go only to the owner, its subscription is its own.
        await HealthCheckAsync(runtime, "owner-token");
        await Eventually.TrueAsync(() => Task.FromResult(Topics(runtime, "owner").SequenceEqual(["orders"])), TimeSpan.FromSeconds(10));
        Assert.Equal(0, Volatile.Read(ref noisy.Requests) - Volatile.Read(ref noisy.Asks));
    }

    [Fact]
    public async Task A_tenant_that_sets_a_refresh_interval_is_asked_at_that_pace_without_traffic()
    {
        var polled = new SubscriberApp { Topics = ["orders"] };
        var quiet = new SubscriberApp { Topics = ["orders"] };
        var polledApp = await AppAsync(polled);
        var quietApp = await AppAsync(quiet);
        await RuntimeAsync(
            AppResources.Tenant("polled", "polled-token", polledApp.Address, """
                appChannel:
                  subscriptionRefreshInterval: 10s
                """) +
            AppResources.Tenant("quiet", "quiet-token", quietApp.Address));

        await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref polled.Asks) >= 2), TimeSpan.FromSeconds(30), "asked twice without traffic");
        Assert.Equal(0, Volatile.Read(ref quiet.Requests));
    }
}
