using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.AppChannel;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.AppChannel;

/// <summary>
/// Apps whose tenants enable the app health check (HTTP apps on real Kestrel): an unhealthy app gets no events and no
/// calls, and gets the events that waited once it is healthy again; another tenant's app is served all along, also
/// while the first app's probes hang.
/// </summary>
public sealed class AppHealthTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);
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

    /// <summary>How an app answers its health probe.</summary>
    private enum Health { Ok, Failing, Hanging }

    /// <summary>An HTTP app that answers /healthz as told, records its events and answers every other call with 200.</summary>
    private sealed class App
    {
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public volatile Health Health;
        public int Probes;
        public int HungProbes;
        public int Calls;
        public ConcurrentQueue<string> Events { get; } = new();
        public TestApp Server { get; private set; } = null!;

        public static async Task<App> StartAsync(List<IAsyncDisposable> owned)
        {
            var app = new App();
            app.Server = await TestApp.StartAsync(app.HandleAsync);
            owned.Add(app.Server);
            owned.Add(new Releaser(app._release));
            return app;
        }

        private async Task HandleAsync(HttpContext context)
        {
            if (context.Request.Path == "/healthz")
            {
                Interlocked.Increment(ref Probes);
                switch (Health)
                {
                    case Health.Failing:
                        context.Response.StatusCode = 503;
                        return;
                    case Health.Hanging:
                        Interlocked.Increment(ref HungProbes);
                        await _release.Task.WaitAsync(context.RequestAborted).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                        return;
                }
                context.Response.StatusCode = 200;
                return;
            }
            if (context.Request.Path == "/dapr/subscribe")
            {
                context.Response.StatusCode = 404;
                return;
            }
            if (context.Request.Path == "/orders")
            {
                using var reader = new StreamReader(context.Request.Body);
                Events.Enqueue(JsonDocument.Parse(await reader.ReadToEndAsync()).RootElement.GetProperty("data").GetProperty("n").ToString());
                return;
            }
            Interlocked.Increment(ref Calls);
            await context.Response.WriteAsync("served");
        }

        private sealed class Releaser(TaskCompletionSource release) : IAsyncDisposable
        {
            public ValueTask DisposeAsync()
            {
                release.TrySetResult();
                return ValueTask.CompletedTask;
            }
        }
    }

    private const string Probed = """
        enableAppHealthCheck: true
        appHealthProbeInterval: 1s
        appHealthProbeTimeout: 200ms
        appHealthThreshold: 2
        """;

    /// <summary>
    /// The bystander's check: probed as often, with most of the interval for a probe slowed by a busy test machine,
    /// so only the tested app's own answers make an app unhealthy here.
    /// </summary>
    private const string BystanderProbed = """
        enableAppHealthCheck: true
        appHealthProbeInterval: 1s
        appHealthProbeTimeout: 900ms
        appHealthThreshold: 2
        """;

    private static string Resources(App alpha, App beta, string alphaHealth = Probed) =>
        AppResources.InMemoryPubSub("pubsub") +
        AppResources.Tenant("alpha", "alpha-token", alpha.Server.Address, alphaHealth) +
        AppResources.Tenant("beta", "beta-token", beta.Server.Address, BystanderProbed) +
        AppResources.Tenant("caller", "caller-token", null) +
        AppResources.Subscription("orders", "pubsub", "orders", "default: /orders", scopes: ["alpha", "beta"]);

    private async Task<(TestRuntime Runtime, App Alpha, App Beta)> StartAsync()
    {
        var alpha = await App.StartAsync(_owned);
        var beta = await App.StartAsync(_owned);
        var runtime = await TestRuntime.StartAsync(Resources(alpha, beta));
        _owned.Add(runtime);
        return (runtime, alpha, beta);
    }

    private static AppHealthProbes Probes(TestRuntime runtime) => runtime.App.Services.GetRequiredService<AppHealthProbes>();

    private static IReadOnlyList<Configuration.SubscriptionConfig> Active(TestRuntime runtime, string appId) =>
        runtime.App.Services.GetRequiredService<SubscriptionDelivery>().ActiveFor(appId);

    private static Task HealthyAsync(TestRuntime runtime, string appId, bool healthy) =>
        Eventually.TrueAsync(() => Task.FromResult(Probes(runtime).IsHealthy(appId) == healthy), Wait, $"{appId} is {(healthy ? "healthy" : "unhealthy")}");

    private static async Task PublishAsync(TestRuntime runtime, int n)
    {
        using var response = await runtime.Client("caller-token").PostAsync("/v1.0/publish/pubsub/orders", Json($$"""{"n":{{n}}}"""));
        await StatusAsync(response, HttpStatusCode.NoContent);
    }

    [Fact]
    public async Task An_unhealthy_app_gets_no_events_or_calls_and_gets_the_events_that_waited_once_healthy()
    {
        var (runtime, alpha, beta) = await StartAsync();
        var caller = runtime.Client("caller-token");
        await HealthyAsync(runtime, "alpha", true);
        await HealthyAsync(runtime, "beta", true);
        await Eventually.TrueAsync(() => Task.FromResult(Active(runtime, "alpha").Count == 1 && Active(runtime, "beta").Count == 1), Wait, "both subscribed");
        await PublishAsync(runtime, 1);
        await Eventually.TrueAsync(() => Task.FromResult(alpha.Events.Count == 1 && beta.Events.Count == 1), Wait, "both got event 1");

        alpha.Health = Health.Failing;
        await HealthyAsync(runtime, "alpha", false);
        var calls = Volatile.Read(ref alpha.Calls);
        using (var refused = await caller.PostAsync("/v1.0/invoke/alpha/method/work", Json("{}")))
        {
            var body = await ErrorAsync(refused, HttpStatusCode.InternalServerError, "ERR_DIRECT_INVOKE");
            Assert.Contains("app is not in a healthy state", body);
        }
        Assert.Equal(calls, Volatile.Read(ref alpha.Calls)); // refused without reaching the app
        await Eventually.TrueAsync(() => Task.FromResult(Active(runtime, "alpha").Count == 0), Wait, "alpha's subscription stopped");

        for (var n = 2; n <= 4; n++)
        {
            await PublishAsync(runtime, n);
        }
        // The other tenant is served all along: its events and its calls.
        await Eventually.TrueAsync(() => Task.FromResult(beta.Events.Count == 4), Wait, "beta got events 2-4");
        using (var served = await caller.PostAsync("/v1.0/invoke/beta/method/work", Json("{}")))
        {
            await StatusAsync(served, HttpStatusCode.OK);
        }
        Assert.Equal(["1"], alpha.Events);
        Assert.True(Probes(runtime).IsHealthy("beta"));

        alpha.Health = Health.Ok;
        await HealthyAsync(runtime, "alpha", true);
        await Eventually.TrueAsync(() => Task.FromResult(alpha.Events.Count == 4), Wait, "alpha got the events that waited");
        Assert.Equal(["1", "2", "3", "4"], alpha.Events.Order());
        using (var served = await caller.PostAsync("/v1.0/invoke/alpha/method/work", Json("{}")))
        {
            await StatusAsync(served, HttpStatusCode.OK);
        }
    }

    [Fact]
    public async Task A_hung_probe_makes_its_app_unhealthy_and_delays_no_other_apps_probes_or_calls()
    {
        var (runtime, alpha, beta) = await StartAsync();
        var caller = runtime.Client("caller-token");
        await HealthyAsync(runtime, "alpha", true);
        await HealthyAsync(runtime, "beta", true);

        alpha.Health = Health.Hanging;
        await HealthyAsync(runtime, "alpha", false);
        Assert.Contains("no answer within 200ms", Probes(runtime).Find("alpha")!.Reason);

        // While alpha's probes hang, beta keeps being probed on time and stays healthy, and its calls are served.
        var hung = Volatile.Read(ref alpha.HungProbes);
        var betaProbes = Volatile.Read(ref beta.Probes);
        await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref alpha.HungProbes) >= hung + 3 && Volatile.Read(ref beta.Probes) >= betaProbes + 3), Wait,
            "three more probes of each app");
        Assert.True(Probes(runtime).IsHealthy("beta"));
        using (var served = await caller.PostAsync("/v1.0/invoke/beta/method/work", Json("{}")))
        {
            await StatusAsync(served, HttpStatusCode.OK);
        }
        // Each tenant's app health is a gauge of its own.
        using (var metrics = new HttpClient())
        {
            List<string> lines = [];
            try
            {
                await Eventually.TrueAsync(async () =>
                {
                    lines = (await metrics.GetStringAsync(new Uri(runtime.MetricsAddress, "/metrics"))).Split('\n')
                        .Where(l => l.StartsWith("sharedruntime_app_healthy{", StringComparison.Ordinal)).ToList();
                    return lines.Count == 2 && // caller enables no check: no series
                        lines.Any(l => l.Contains("app_id=\"alpha\"", StringComparison.Ordinal) && l.Contains("} 0", StringComparison.Ordinal)) &&
                        lines.Any(l => l.Contains("app_id=\"beta\"", StringComparison.Ordinal) && l.Contains("} 1", StringComparison.Ordinal));
                }, Wait, "the health gauge shows alpha unhealthy and beta healthy");
            }
            catch (TimeoutException ex)
            {
                throw new TimeoutException($"{ex.Message}; last scrape: [{string.Join(" | ", lines)}]; " +
                    $"alpha: {Probes(runtime).Find("alpha")?.Reason ?? "healthy"}, beta: {Probes(runtime).Find("beta")?.Reason ?? "healthy"}", ex);
            }
        }
        // Failed probes are not calls: the app's own circuit breaker has not moved.
        Assert.Equal(CircuitState.Closed, runtime.App.Services.GetRequiredService<AppChannels>().Find("alpha")!.BreakerState);

        alpha.Health = Health.Ok;
        await HealthyAsync(runtime, "alpha", true);
    }

    [Fact]
    public async Task A_reload_that_disables_the_check_resumes_an_unhealthy_apps_deliveries()
    {
        var (runtime, alpha, beta) = await StartAsync();
        await HealthyAsync(runtime, "alpha", true);
        alpha.Health = Health.Failing;
        await HealthyAsync(runtime, "alpha", false);
        await Eventually.TrueAsync(() => Task.FromResult(Active(runtime, "alpha").Count == 0), Wait, "alpha's subscription stopped");
        await runtime.WriteResourceAsync("resources.yaml", Resources(alpha, beta, alphaHealth: "enableAppHealthCheck: false"));
        await Eventually.TrueAsync(() => Task.FromResult(Probes(runtime).Find("alpha") is null && Active(runtime, "alpha").Count == 1), Wait, "alpha no longer probed, subscribed again");
    }
}
