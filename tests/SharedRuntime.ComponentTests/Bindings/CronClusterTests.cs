using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.ComponentTests.Servers;
using SharedRuntime.Tests;

namespace SharedRuntime.ComponentTests.Bindings;

/// <summary>
/// <c>bindings.cron</c> in two runtimes sharing one Redis, as two nodes of a cluster: with <c>lockStore</c> each tick
/// reaches each scoped app once; without it every runtime delivers every tick; an app outside the scopes gets nothing.
/// </summary>
public sealed class CronClusterTests(RedisServer server) : IClassFixture<RedisServer>
{
    private const int PeriodSeconds = 3;

    [SkippableFact]
    public async Task TwoRuntimesSharingOneRedisFireEachTickOncePerApp()
    {
        TestServers.Require("redis-server", server.Missing);
        await server.FlushAsync();
        var orders = new Posts();
        var billing = new Posts();
        var other = new Posts();
        await using var ordersApp = await TestApp.StartAsync(orders.RecordAsync);
        await using var billingApp = await TestApp.StartAsync(billing.RecordAsync);
        await using var otherApp = await TestApp.StartAsync(other.RecordAsync);
        var yaml = Resources.Tenant("orders", "orders-token", appEndpoint: Endpoint(ordersApp))
            + Resources.Tenant("billing", "billing-token", appEndpoint: Endpoint(billingApp))
            + Resources.Tenant("other", "other-token", appEndpoint: Endpoint(otherApp))
            + Resources.Component("locks", "lock.redis", new Dictionary<string, string> { ["redisHost"] = server.Host })
            + Resources.Component("tick", "bindings.cron", new Dictionary<string, string> { ["schedule"] = $"@every {PeriodSeconds}s", ["lockStore"] = "locks" }, ["orders", "billing"])
            + Resources.Component("each", "bindings.cron", new Dictionary<string, string> { ["schedule"] = $"@every {PeriodSeconds}s", ["route"] = "/everywhere", ["direction"] = "input" }, ["orders"]);
        await using var one = await TestRuntime.StartAsync(yaml);
        await using var two = await TestRuntime.StartAsync(yaml);

        // Without a lock store both runtimes deliver a tick: some tick reaches orders twice at /everywhere.
        await Eventually.TrueAsync(() => Task.FromResult(orders.Ticks("/everywhere").GroupBy(t => t).Any(g => g.Count() == 2)), TimeSpan.FromSeconds(30),
            "each runtime delivers every tick of a binding without lockStore");
        Assert.All(orders.Ticks("/everywhere").GroupBy(t => t), g => Assert.InRange(g.Count(), 1, 2));
        // The app records a post before its answer reaches the runtime that sent it: each runtime counts its delivery a moment later.
        await Eventually.TrueAsync(() => Task.FromResult(Delivered(one) > 0 && Delivered(two) > 0), TimeSpan.FromSeconds(10),
            "both runtimes count a delivery");

        await Eventually.TrueAsync(() => Task.FromResult(orders.Ticks("/tick").Count >= 3 && billing.Ticks("/tick").Count >= 3), TimeSpan.FromSeconds(30),
            "three ticks delivered to each scoped app");
        foreach (var posts in new[] { orders, billing })
        {
            var ticks = posts.Ticks("/tick");
            Assert.True(ticks.Distinct().Count() == ticks.Count, $"a tick was delivered twice: {string.Join(", ", ticks)}");
        }
        Assert.Empty(other.All);

        // An input-only binding is no output binding, as in Dapr; another tenant cannot even see it.
        await ApiCalls.ErrorAsync(await one.Client("orders-token").PostAsync("/v1.0/bindings/tick", ApiCalls.Json("""{"operation":"create"}""")),
            System.Net.HttpStatusCode.NotFound, "ERR_INVOKE_OUTPUT_BINDING");
        await ApiCalls.ErrorAsync(await one.Client("other-token").PostAsync("/v1.0/bindings/tick", ApiCalls.Json("""{"operation":"create"}""")),
            System.Net.HttpStatusCode.NotFound, "ERR_INVOKE_OUTPUT_BINDING");

        var first = orders.All.First(p => p.Path == "/tick");
        Assert.Equal("application/json", first.ContentType);
        Assert.Equal("UTC", first.TimeZone);
        Assert.EndsWith(" +0000 UTC", first.ReadTimeUtc, StringComparison.Ordinal);
    }

    private static int Delivered(TestRuntime runtime) => runtime.App.Services.GetRequiredService<InputBindingDelivery>().Delivered;

    private static string Endpoint(TestApp app) => app.Address.ToString().TrimEnd('/');

    private sealed record Post(string Path, string? ContentType, string? TimeZone, string ReadTimeUtc);

    /// <summary>What one app received, and the tick (period start) each post belongs to.</summary>
    private sealed class Posts
    {
        private readonly ConcurrentQueue<Post> _posts = new();

        public IReadOnlyList<Post> All => [.. _posts];

        public Task RecordAsync(HttpContext context)
        {
            _posts.Enqueue(new Post(context.Request.Path.Value ?? "", context.Request.ContentType, context.Request.Headers["timeZone"].ToString(),
                context.Request.Headers["readTimeUTC"].ToString()));
            context.Response.StatusCode = 200;
            return Task.CompletedTask;
        }

        /// <summary>The tick each post to <paramref name="path"/> was for: the read time rounded down to the period.</summary>
        public List<long> Ticks(string path) =>
            [.. All.Where(p => p.Path == path).Select(p => ReadTime(p.ReadTimeUtc).ToUnixTimeSeconds() / PeriodSeconds * PeriodSeconds)];

        private static DateTimeOffset ReadTime(string goTime) =>
            DateTimeOffset.ParseExact(goTime.Replace(" +0000 UTC", "", StringComparison.Ordinal), ["yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd HH:mm:ss.FFFFFFF"],
                CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
    }
}
