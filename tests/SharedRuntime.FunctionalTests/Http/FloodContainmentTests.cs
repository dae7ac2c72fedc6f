using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SharedRuntime.Admission;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>
/// A tenant flooding far over its rate limit pays for its own flood: its refusals after the first are held (push-back)
/// while a second tenant is served, only its own requests are held, and its refusals are logged as a bounded number
/// of lines.
/// </summary>
public sealed class FloodContainmentTests
{
    private static readonly string TwoTenants =
        Resources.Tenant("noisy", "noisy-token", "requestsPerSecond: 0.01\nburst: 1") +
        Resources.Tenant("quiet", "quiet-token", "requestsPerSecond: 0.01\nburst: 30") +
        Resources.Component("store", "state.in-memory");

    [Fact]
    public async Task A_flooding_tenants_held_refusals_do_not_delay_a_second_tenant_and_only_its_requests_are_held()
    {
        // A hold far longer than the test: the noisy tenant's refusals stay held until its client gives up.
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string> { ["r.yaml"] = TwoTenants },
            o => o with { PushbackMaxDelayMilliseconds = 60_000 });
        var pushback = runtime.App.Services.GetRequiredService<Pushback>();
        var noisy = runtime.Client("noisy-token");
        var quiet = runtime.Client("quiet-token");
        await StatusAsync(await quiet.PostAsync("/v1.0/state/store", Json("""[{"key":"k","value":1}]""")), HttpStatusCode.NoContent);

        await StatusAsync(await noisy.GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        // Its first refusal is answered at once, with the wait it should keep.
        var first = await noisy.GetAsync("/v1.0/metadata");
        await ErrorAsync(first, HttpStatusCode.TooManyRequests, "ERR_TENANT_RATE_LIMITED");
        Assert.True(int.Parse(first.Headers.GetValues("Retry-After").Single()) >= 1);

        // It does not wait: 10 more requests, each on its own connection, are held.
        using var giveUp = new CancellationTokenSource();
        var held = Enumerable.Range(0, 10).Select(_ => noisy.GetAsync("/v1.0/metadata", giveUp.Token)).ToList();
        var noisyRefusals = runtime.Configuration.Current.Tenants["noisy"].Admission.Refusals;
        await Eventually.TrueAsync(() => Task.FromResult(noisyRefusals.Parked == 10), TimeSpan.FromSeconds(10), "the flood's refusals are held");

        // Meanwhile the quiet tenant is served, and its own first refusal is answered at once, not held.
        for (var i = 0; i < 29; i++)
        {
            await StatusAsync(await quiet.GetAsync("/v1.0/state/store/k"), HttpStatusCode.OK);
        }
        await ErrorAsync(await quiet.GetAsync("/v1.0/metadata"), HttpStatusCode.TooManyRequests, "ERR_TENANT_RATE_LIMITED");
        Assert.Equal(0, runtime.Configuration.Current.Tenants["quiet"].Admission.Refusals.Parked);
        Assert.All(held, t => Assert.False(t.IsCompleted, "a held refusal was answered before the quiet tenant's requests"));
        Assert.Equal(10, pushback.Parked);

        // A client that gives up frees its places.
        await giveUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Task.WhenAll(held));
        await Eventually.TrueAsync(() => Task.FromResult(pushback.Parked == 0), TimeSpan.FromSeconds(10), "held refusals end with their connection");
    }

    [Fact]
    public async Task Push_back_holds_at_most_its_share_and_answers_the_rest_at_once()
    {
        // 8 places on the node, 2 per tenant.
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string> { ["r.yaml"] = TwoTenants },
            o => o with { PushbackMaxDelayMilliseconds = 60_000, PushbackMaxParked = 8 });
        var pushback = runtime.App.Services.GetRequiredService<Pushback>();
        var noisy = runtime.Client("noisy-token");
        await StatusAsync(await noisy.GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        await ErrorAsync(await noisy.GetAsync("/v1.0/metadata"), HttpStatusCode.TooManyRequests, "ERR_TENANT_RATE_LIMITED");

        using var giveUp = new CancellationTokenSource();
        var flood = Enumerable.Range(0, 10).Select(_ => noisy.GetAsync("/v1.0/metadata", giveUp.Token)).ToList();
        await Eventually.TrueAsync(() => Task.FromResult(flood.Count(t => t.IsCompleted) == 8), TimeSpan.FromSeconds(10), "all but the held two are answered");
        foreach (var answered in flood.Where(t => t.IsCompleted))
        {
            await ErrorAsync(await answered, HttpStatusCode.TooManyRequests, "ERR_TENANT_RATE_LIMITED");
        }
        Assert.Equal(2, pushback.Parked);

        await giveUp.CancelAsync();
        await Eventually.TrueAsync(() => Task.FromResult(pushback.Parked == 0), TimeSpan.FromSeconds(10), "held refusals end with their connection");
    }

    [Fact]
    public async Task Refusals_are_logged_as_a_bounded_number_of_lines_with_their_count()
    {
        var logs = new LineCapture();
        var clock = Stopwatch.StartNew();
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string> { ["r.yaml"] = TwoTenants },
            o => o with { LogLevel = "info", PushbackMaxDelayMilliseconds = 0 },
            services => services.AddSingleton<ILoggerProvider>(logs));
        var noisy = runtime.Client("noisy-token");
        await StatusAsync(await noisy.GetAsync("/v1.0/metadata"), HttpStatusCode.OK);

        const int refusals = 300;
        for (var i = 0; i < refusals; i++)
        {
            await ErrorAsync(await noisy.GetAsync("/v1.0/metadata"), HttpStatusCode.TooManyRequests, "ERR_TENANT_RATE_LIMITED");
        }

        var lines = logs.Lines.Where(l => l.EventId == 2006).ToList();
        // One line at the first refusal, then at most one per interval, each with the count since the line before.
        var intervals = (int)(clock.Elapsed / TenantAdmissionMiddlewareInterval);
        Assert.InRange(lines.Count, 1, 1 + intervals);
        Assert.Contains("Tenant noisy: 1 requests refused, rate_limited", lines[0].Text);
        Assert.DoesNotContain(lines, l => l.Text.Contains("Tenant quiet"));
    }

    private static readonly TimeSpan TenantAdmissionMiddlewareInterval = SharedRuntime.Http.TenantAdmissionMiddleware.RefusalLogInterval;

    private sealed class LineCapture : ILoggerProvider
    {
        public ConcurrentQueue<(int EventId, string Text)> Lines { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void Dispose()
        {
        }

        private sealed class Logger(LineCapture capture) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                capture.Lines.Enqueue((eventId.Id, formatter(state, exception)));
        }
    }
}
