using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Http;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.AppChannel;

/// <summary>Per-tenant outbound protection: Resiliency retries, timeouts and breakers, and the app channel's own bounds.</summary>
public sealed class ResiliencyTests : IAsyncLifetime
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

    private async Task<TestApp> AppAsync(RequestDelegate handler)
    {
        var app = await TestApp.StartAsync(handler);
        _owned.Add(app);
        return app;
    }

    private async Task<TestRuntime> RuntimeAsync(string yaml)
    {
        var runtime = await TestRuntime.StartAsync(yaml);
        _owned.Add(runtime);
        return runtime;
    }

    private const string Policies = """
        apiVersion: dapr.io/v1alpha1
        kind: Resiliency
        metadata:
          name: outbound
        spec:
          policies:
            timeouts:
              quick: 300ms
            retries:
              threeTimes:
                policy: constant
                duration: 10ms
                maxRetries: 2
            circuitBreakers:
              flaky:
                maxRequests: 1
                timeout: 1s
                trip: consecutiveFailures >= 3
          targets:
            apps:
              billing:
                retry: threeTimes
                circuitBreaker: flaky
              slow:
                timeout: quick
        scopes:
          - orders
        ---

        """;

    [Fact]
    public async Task Retries_then_an_open_breaker_fail_fast_and_a_probe_closes_it_again()
    {
        var calls = 0;
        var healthy = false;
        var billing = await AppAsync(async context =>
        {
            Interlocked.Increment(ref calls);
            context.Response.StatusCode = Volatile.Read(ref healthy) ? 200 : 500;
            await context.Response.WriteAsync(Volatile.Read(ref healthy) ? "ok" : "broken");
        });
        var runtime = await RuntimeAsync(Policies +
            AppResources.Tenant("orders", "orders-token", null) +
            AppResources.Tenant("shipping", "shipping-token", null) +
            AppResources.Tenant("billing", "billing-token", billing.Address));
        var orders = runtime.Client("orders-token");

        // Three attempts (one plus two retries); the app's last answer comes back as it was.
        using (var first = await orders.GetAsync("/v1.0/invoke/billing/method/pay"))
        {
            Assert.Equal(HttpStatusCode.InternalServerError, first.StatusCode);
            Assert.Equal("broken", await first.Content.ReadAsStringAsync());
        }
        Assert.Equal(3, Volatile.Read(ref calls));

        // Three consecutive failures tripped the breaker: the next call fails without reaching the app.
        await ErrorAsync(await orders.GetAsync("/v1.0/invoke/billing/method/pay"), HttpStatusCode.InternalServerError, "ERR_DIRECT_INVOKE");
        Assert.Equal(3, Volatile.Read(ref calls));

        // The breaker and the retries are the caller's: another tenant still reaches billing, once per call.
        using (var other = await runtime.Client("shipping-token").GetAsync("/v1.0/invoke/billing/method/pay"))
        {
            Assert.Equal(HttpStatusCode.InternalServerError, other.StatusCode);
        }
        Assert.Equal(4, Volatile.Read(ref calls));

        // After its timeout the breaker lets a probe through; a success closes it.
        Volatile.Write(ref healthy, true);
        await Eventually.TrueAsync(async () =>
        {
            using var probe = await orders.GetAsync("/v1.0/invoke/billing/method/pay");
            return probe.StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(10), "the breaker closes once the app answers again");
        for (var i = 0; i < 5; i++)
        {
            await StatusAsync(await orders.GetAsync("/v1.0/invoke/billing/method/pay"), HttpStatusCode.OK);
        }
    }

    [Fact]
    public async Task A_timeout_policy_ends_a_slow_call()
    {
        var slow = await AppAsync(async context =>
        {
            await Task.Delay(TimeSpan.FromSeconds(10), context.RequestAborted);
        });
        var runtime = await RuntimeAsync(Policies +
            AppResources.Tenant("orders", "orders-token", null) +
            AppResources.Tenant("slow", "slow-token", slow.Address));

        var watch = Stopwatch.StartNew();
        await ErrorAsync(await runtime.Client("orders-token").GetAsync("/v1.0/invoke/slow/method/work"), HttpStatusCode.InternalServerError, "ERR_DIRECT_INVOKE");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"took {watch.Elapsed}");
    }

    [Fact]
    public async Task A_hung_app_fills_only_its_own_slots_and_others_are_served()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hungCalls = 0;
        var hung = await AppAsync(async context =>
        {
            Interlocked.Increment(ref hungCalls);
            await release.Task.WaitAsync(context.RequestAborted);
        });
        var healthy = await AppAsync(context => context.Response.WriteAsync("fine"));
        var runtime = await RuntimeAsync(
            AppResources.Tenant("caller", "caller-token", null) +
            AppResources.Tenant("hung", "hung-token", hung.Address, """
                appChannel:
                  maxConcurrency: 2
                  maxQueue: 1
                  timeout: 30s
                """) +
            AppResources.Tenant("healthy", "healthy-token", healthy.Address));
        var caller = runtime.Client("caller-token");
        try
        {
            var stuck = Enumerable.Range(0, 3).Select(_ => caller.GetAsync("/v1.0/invoke/hung/method/wait")).ToList();
            await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref hungCalls) == 2), TimeSpan.FromSeconds(10));

            // Two in flight and one waiting: the next call into the hung app is refused at once.
            var busy = await caller.GetAsync("/v1.0/invoke/hung/method/wait");
            await ErrorAsync(busy, HttpStatusCode.TooManyRequests, "ERR_TENANT_APP_BUSY");
            Assert.True(busy.Headers.RetryAfter is not null);

            // The same caller's calls to another app are not held up.
            for (var i = 0; i < 20; i++)
            {
                using var response = await caller.GetAsync("/v1.0/invoke/healthy/method/x");
                Assert.Equal("fine", await response.Content.ReadAsStringAsync());
            }
            release.TrySetResult();
            foreach (var call in stuck)
            {
                await StatusAsync(await call.WaitAsync(TimeSpan.FromSeconds(10)), HttpStatusCode.OK);
            }
        }
        finally
        {
            release.TrySetResult();
        }
    }

    [Fact]
    public async Task An_unreachable_app_opens_its_channel_breaker_and_fails_fast()
    {
        var closedPort = TestRuntime.FreePorts(1)[0];
        var runtime = await RuntimeAsync(
            AppResources.Tenant("caller", "caller-token", null) +
            AppResources.Tenant("gone", "gone-token", new Uri($"http://127.0.0.1:{closedPort}"), """
                appChannel:
                  breakAfterFailures: 2
                  breakDuration: 30s
                """));
        var caller = runtime.Client("caller-token");
        for (var i = 0; i < 2; i++)
        {
            var message = await ErrorAsync(await caller.GetAsync("/v1.0/invoke/gone/method/x"), HttpStatusCode.InternalServerError, "ERR_DIRECT_INVOKE");
            Assert.DoesNotContain("circuit", message);
        }
        var open = await ErrorAsync(await caller.GetAsync("/v1.0/invoke/gone/method/x"), HttpStatusCode.InternalServerError, "ERR_DIRECT_INVOKE");
        Assert.Contains("circuit breaker", open);
    }

    [Fact]
    public async Task Outbound_component_policies_retry_and_break_for_their_tenant_only()
    {
        var calls = 0;
        var failuresLeft = 2;
        var target = await AppAsync(async context =>
        {
            Interlocked.Increment(ref calls);
            var failing = Interlocked.Decrement(ref failuresLeft) >= 0;
            context.Response.StatusCode = failing ? 503 : 200;
            await context.Response.WriteAsync(failing ? "down" : "up");
        });
        var runtime = await RuntimeAsync($"""
            apiVersion: dapr.io/v1alpha1
            kind: Resiliency
            metadata:
              name: hook-policy
            spec:
              policies:
                retries:
                  twice:
                    policy: constant
                    duration: 10ms
                    maxRetries: 2
                circuitBreakers:
                  hook:
                    timeout: 30s
                    trip: consecutiveFailures >= 3
              targets:
                components:
                  hook:
                    outbound:
                      retry: twice
                      circuitBreaker: hook
            scopes: [orders]
            ---

            """ +
            AppResources.Tenant("orders", "orders-token", null) +
            AppResources.Tenant("billing", "billing-token", null) +
            Resources.Component("hook", "bindings.http", new Dictionary<string, string> { ["url"] = target.Address.ToString() }));
        var orders = runtime.Client("orders-token");
        var body = Json("""{"operation":"post","data":{"n":1}}""");

        // Two failures, then the third attempt succeeds: the app sees one successful call.
        await StatusAsync(await orders.PostAsync("/v1.0/bindings/hook", body), HttpStatusCode.OK);
        Assert.Equal(3, Volatile.Read(ref calls));

        // Another tenant has no policy: a failure comes back at once, without retries.
        Volatile.Write(ref failuresLeft, 100);
        await ErrorAsync(await runtime.Client("billing-token").PostAsync("/v1.0/bindings/hook", body), HttpStatusCode.InternalServerError, "ERR_INVOKE_OUTPUT_BINDING");
        Assert.Equal(4, Volatile.Read(ref calls));

        // Three more failures for orders trip its breaker; then its calls fail without reaching the target.
        await ErrorAsync(await orders.PostAsync("/v1.0/bindings/hook", body), HttpStatusCode.InternalServerError, "ERR_INVOKE_OUTPUT_BINDING");
        Assert.Equal(7, Volatile.Read(ref calls));
        var open = await ErrorAsync(await orders.PostAsync("/v1.0/bindings/hook", body), HttpStatusCode.InternalServerError, "ERR_INVOKE_OUTPUT_BINDING");
        Assert.Contains("circuit breaker", open);
        Assert.Equal(7, Volatile.Read(ref calls));
    }

    [Fact]
    public async Task A_caller_flooding_an_app_does_not_crowd_out_another_caller_of_it()
    {
        var open = new System.Collections.Concurrent.ConcurrentQueue<TaskCompletionSource>();
        var served = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var target = await AppAsync(async context =>
        {
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            served.Enqueue(context.Request.Headers["dapr-caller-app-id"].ToString());
            open.Enqueue(gate);
            await gate.Task.WaitAsync(context.RequestAborted);
        });
        var runtime = await RuntimeAsync(
            AppResources.Tenant("flooder", "flooder-token", null) +
            AppResources.Tenant("other", "other-token", null) +
            AppResources.Tenant("target", "target-token", target.Address, """
                appChannel:
                  maxConcurrency: 1
                  maxQueue: 10
                """));
        var channel = ((SharedRuntime.AppChannel.AppChannels)runtime.App.Services.GetService(typeof(SharedRuntime.AppChannel.AppChannels))!).Find("target")!;

        // One flooder call in the app, five waiting; then the other caller's single call arrives.
        var calls = Enumerable.Range(0, 6).Select(_ => runtime.Client("flooder-token").GetAsync("/v1.0/invoke/target/method/work")).ToList();
        await Eventually.TrueAsync(() => Task.FromResult(served.Count == 1 && channel.Calls.QueuedFor("flooder") == 5), TimeSpan.FromSeconds(10));
        calls.Add(runtime.Client("other-token").GetAsync("/v1.0/invoke/target/method/work"));
        await Eventually.TrueAsync(() => Task.FromResult(channel.Calls.QueuedFor("other") == 1), TimeSpan.FromSeconds(10));

        // Let the app answer one call at a time.
        for (var answered = 0; answered < calls.Count; answered++)
        {
            TaskCompletionSource? gate = null;
            await Eventually.TrueAsync(() => Task.FromResult(open.TryDequeue(out gate)), TimeSpan.FromSeconds(10), $"call {answered + 1} reaches the app");
            gate!.TrySetResult();
        }
        foreach (var call in calls)
        {
            await StatusAsync(await call.WaitAsync(TimeSpan.FromSeconds(10)), HttpStatusCode.OK);
        }

        // The other caller waited for at most one more flooder call, not for all five queued before it.
        var order = served.ToList();
        Assert.Equal(7, order.Count);
        Assert.True(order.IndexOf("other") <= 2, $"served in the order {string.Join(", ", order)}");
    }
}
