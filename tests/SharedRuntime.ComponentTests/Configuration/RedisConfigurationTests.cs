using System.Net;
using System.Text.Json;
using System.Threading.Channels;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using SharedRuntime.ComponentTests.Servers;
using SharedRuntime.Components.Configuration;
using SharedRuntime.Components.State;
using SharedRuntime.Tests;
using StackExchange.Redis;
using static SharedRuntime.ComponentTests.Servers.ApiCalls;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.ComponentTests.Configuration;

/// <summary>
/// <c>configuration.redis</c> against a real redis-server: Dapr's <c>value||version</c> items, changes that arrive at
/// subscribers (the store's watchers, a gRPC stream, an app over HTTP), tenants that never see or end each other's
/// items and subscriptions, and the bounds on keys and subscriptions.
/// </summary>
public sealed class RedisConfigurationTests(RedisServer server) : IClassFixture<RedisServer>, IAsyncLifetime
{
    /// <summary>Generous: updates are asserted to arrive, not timed.</summary>
    private static readonly TimeSpan Arrives = TimeSpan.FromSeconds(15);

    private ConnectionMultiplexer? _redis;

    private IDatabase Redis => _redis!.GetDatabase();

    public async Task InitializeAsync()
    {
        if (server.Missing is null)
        {
            await server.FlushAsync();
            _redis = await ConnectionMultiplexer.ConnectAsync(server.Host);
        }
    }

    public async Task DisposeAsync()
    {
        if (_redis is not null)
        {
            await _redis.DisposeAsync();
        }
    }

    private async Task<RedisConfigurationStore> StoreAsync(int maxKeys = 1000)
    {
        var context = Context("config", "configuration.redis", new() { ["redisHost"] = server.Host, ["maxKeysPerRequest"] = maxKeys.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        var store = new RedisConfigurationStore(RedisStateOptions.From(context), ConfigurationStoreLimits.From(context), NullLogger<RedisConfigurationStore>.Instance);
        await store.InitAsync(default);
        return store;
    }

    [SkippableFact]
    public async Task ItemsAreReadAsDaprWritesThemAndOnlyTheAppsOwn()
    {
        TestServers.Require("redis-server", server.Missing);
        await Redis.StringSetAsync([new("orders||color", "blue||1"), new("orders||size", "large"), new("orders||empty", ""), new("billing||color", "red||7")]);
        await Redis.HashSetAsync("orders||hash", "data", "x");
        await using var store = await StoreAsync();

        var named = await store.GetAsync("orders", ["color", "size", "missing"], default);
        Assert.Equal(("blue", "1"), (named["color"].Value, named["color"].Version));
        Assert.Equal(("large", ""), (named["size"].Value, named["size"].Version));
        Assert.Equal(2, named.Count);

        var all = await store.GetAsync("orders", [], default);
        Assert.Equal(["color", "size"], all.Keys.Order());
        var billing = await store.GetAsync("billing", [], default);
        Assert.Equal("red", Assert.Single(billing).Value.Value);
    }

    [SkippableFact]
    public async Task AGetOfAllItemsPastTheBoundIsRefused()
    {
        TestServers.Require("redis-server", server.Missing);
        await Redis.StringSetAsync([new("orders||a", "1"), new("orders||b", "2"), new("orders||c", "3"), new("billing||a", "1")]);
        await using var store = await StoreAsync(maxKeys: 2);
        await Assert.ThrowsAsync<ConfigurationTooManyItemsException>(() => store.GetAsync("orders", [], default).AsTask());
        Assert.Single(await store.GetAsync("billing", [], default));
    }

    [SkippableFact]
    public async Task ChangesArriveAtTheSubscribersOfTheirAppAndKeysOnly()
    {
        TestServers.Require("redis-server", server.Missing);
        await using var store = await StoreAsync();
        var all = new Watcher();
        var color = new Watcher();
        var billing = new Watcher();
        await using (await store.SubscribeAsync("orders", [], all, default))
        await using (await store.SubscribeAsync("orders", ["color"], color, default))
        await using (await store.SubscribeAsync("billing", [], billing, default))
        {
            Assert.Equal(2, await store.CountWatchedPrefixesAsync());
            await Redis.StringSetAsync("orders||size", "small||3");
            await Redis.StringSetAsync("orders||color", "green||2");
            var first = await all.NextAsync();
            Assert.Equal(("small", "3"), (first["size"].Value, first["size"].Version));
            Assert.Equal("green", (await color.NextAsync())["color"].Value);
            Assert.Equal("green", (await all.NextAsync())["color"].Value);

            await Redis.KeyDeleteAsync("orders||color");
            Assert.Same(ConfigurationItem.Deleted, (await color.NextAsync())["color"]);

            await Redis.StringSetAsync("billing||color", "red||8");
            Assert.Equal("red", (await billing.NextAsync())["color"].Value);
            Assert.Same(ConfigurationItem.Deleted, Assert.Single(await all.NextAsync(), c => c.Key == "color").Value);
            Assert.Equal(0, all.Waiting + color.Waiting);
        }
        Assert.Equal(0, await store.CountWatchedPrefixesAsync());
    }

    [SkippableFact]
    public async Task AGrpcSubscriptionStreamsEveryChangeAndOnlyItsAppCanEndIt()
    {
        TestServers.Require("redis-server", server.Missing);
        await using var runtime = await TestRuntime.StartAsync(Yaml());
        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(runtime.GrpcAddress);
        var client = new Autogen.Dapr.DaprClient(channel);
        var orders = new Metadata { { "dapr-api-token", "orders-token" } };
        var billing = new Metadata { { "dapr-api-token", "billing-token" } };
        await Redis.StringSetAsync("orders||color", "blue||1");

        var request = new Autogen.SubscribeConfigurationRequest { StoreName = "config" };
        request.Keys.Add("color");
        using var call = client.SubscribeConfiguration(request, orders);
        using var timeout = new CancellationTokenSource(Arrives);
        Assert.True(await call.ResponseStream.MoveNext(timeout.Token));
        var id = call.ResponseStream.Current.Id;
        Assert.Equal("blue", call.ResponseStream.Current.Items["color"].Value);

        for (var version = 2; version <= 4; version++)
        {
            await Redis.StringSetAsync("orders||color", $"v{version}||{version}");
            Assert.True(await call.ResponseStream.MoveNext(timeout.Token));
            var item = call.ResponseStream.Current.Items["color"];
            if (item.Version != version.ToString(System.Globalization.CultureInfo.InvariantCulture))
            {
                // Changes that came faster than the stream was read are coalesced: the latest one is what counts.
                Assert.True(int.Parse(item.Version, System.Globalization.CultureInfo.InvariantCulture) >= version);
                version = int.Parse(item.Version, System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        await Redis.StringSetAsync("billing||color", "red||9");
        Assert.False((await client.UnsubscribeConfigurationAsync(new Autogen.UnsubscribeConfigurationRequest { StoreName = "config", Id = id }, billing)).Ok);
        Assert.True((await client.UnsubscribeConfigurationAsync(new Autogen.UnsubscribeConfigurationRequest { StoreName = "config", Id = id }, orders)).Ok);
        Assert.False(await call.ResponseStream.MoveNext(timeout.Token));
    }

    [SkippableFact]
    public async Task AnHttpSubscriptionPostsChangesToItsAppAndItsAppAlone()
    {
        TestServers.Require("redis-server", server.Missing);
        var ordersPosts = Channel.CreateUnbounded<(string Path, string Body)>();
        var billingPosts = Channel.CreateUnbounded<(string Path, string Body)>();
        await using var ordersApp = await TestApp.StartAsync(context => Record(context, ordersPosts));
        await using var billingApp = await TestApp.StartAsync(context => Record(context, billingPosts));
        await using var runtime = await TestRuntime.StartAsync(Yaml(ordersApp.Address, billingApp.Address));
        var orders = runtime.Client("orders-token");
        var billing = runtime.Client("billing-token");

        using var subscribed = await JsonAsync(await orders.GetAsync("/v1.0/configuration/config/subscribe?key=color"));
        var id = subscribed.RootElement.GetProperty("id").GetString()!;
        using (await JsonAsync(await billing.GetAsync("/v1.0-alpha1/configuration/config/subscribe"))) { }

        await Redis.StringSetAsync("orders||color", "green||2");
        using var timeout = new CancellationTokenSource(Arrives);
        var (path, body) = await ordersPosts.Reader.ReadAsync(timeout.Token);
        Assert.Equal("/configuration/config/color", path);
        using (var json = JsonDocument.Parse(body))
        {
            Assert.Equal(id, json.RootElement.GetProperty("id").GetString());
            Assert.Equal("green", json.RootElement.GetProperty("items").GetProperty("color").GetProperty("value").GetString());
            Assert.Equal("2", json.RootElement.GetProperty("items").GetProperty("color").GetProperty("version").GetString());
        }

        // Billing's own change reaches billing's app; orders' change never did.
        await Redis.StringSetAsync("billing||color", "red||5");
        var billingPost = await billingPosts.Reader.ReadAsync(timeout.Token);
        Assert.Contains("red", billingPost.Body, StringComparison.Ordinal);
        Assert.False(billingPosts.Reader.TryRead(out _));

        await ErrorAsync(await billing.GetAsync($"/v1.0/configuration/config/{id}/unsubscribe"), HttpStatusCode.BadRequest, "ERR_CONFIGURATION_UNSUBSCRIBE");
        using (var ok = await JsonAsync(await orders.GetAsync($"/v1.0/configuration/config/{id}/unsubscribe")))
        {
            Assert.True(ok.RootElement.GetProperty("ok").GetBoolean());
        }
        await ErrorAsync(await orders.GetAsync($"/v1.0/configuration/config/{id}/unsubscribe"), HttpStatusCode.BadRequest, "ERR_CONFIGURATION_UNSUBSCRIBE");
    }

    [SkippableFact]
    public async Task PastTheSubscriptionAndKeyBoundsATenantIsRefusedAndTheOtherIsServed()
    {
        TestServers.Require("redis-server", server.Missing);
        await using var app = await TestApp.StartAsync(context => { context.Response.StatusCode = 200; return Task.CompletedTask; });
        await using var runtime = await TestRuntime.StartAsync(Yaml(app.Address, app.Address, new() { ["maxSubscriptionsPerApp"] = "2", ["maxKeysPerRequest"] = "3" }));
        var orders = runtime.Client("orders-token");
        var billing = runtime.Client("billing-token");

        using (await JsonAsync(await orders.GetAsync("/v1.0/configuration/config/subscribe?key=a"))) { }
        using (await JsonAsync(await orders.GetAsync("/v1.0/configuration/config/subscribe?key=b"))) { }
        await ErrorAsync(await orders.GetAsync("/v1.0/configuration/config/subscribe?key=c"), (HttpStatusCode)429, "ERR_TENANT_CONFIGURATION_SUBSCRIPTIONS_EXCEEDED");
        using (await JsonAsync(await billing.GetAsync("/v1.0/configuration/config/subscribe?key=c"))) { }

        await ErrorAsync(await orders.GetAsync("/v1.0/configuration/config?key=a&key=b&key=c&key=d"), HttpStatusCode.BadRequest, "ERR_TENANT_TOO_MANY_KEYS");
        await ErrorAsync(await billing.GetAsync("/v1.0/configuration/config/subscribe?key=a&key=b&key=c&key=d"), HttpStatusCode.BadRequest, "ERR_TENANT_TOO_MANY_KEYS");
        await Redis.StringSetAsync([new("orders||a", "1"), new("orders||b", "2"), new("orders||c", "3"), new("orders||d", "4")]);
        await ErrorAsync(await orders.GetAsync("/v1.0/configuration/config"), HttpStatusCode.BadRequest, "ERR_TENANT_TOO_MANY_KEYS");
        Assert.Equal(HttpStatusCode.OK, (await billing.GetAsync("/v1.0/configuration/config")).StatusCode);

        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(runtime.GrpcAddress);
        var client = new Autogen.Dapr.DaprClient(channel);
        var call = client.SubscribeConfiguration(new Autogen.SubscribeConfigurationRequest { StoreName = "config" }, new Metadata { { "dapr-api-token", "orders-token" } });
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
    }

    private string Yaml(Uri? ordersApp = null, Uri? billingApp = null, Dictionary<string, string>? extra = null)
    {
        var metadata = new Dictionary<string, string> { ["redisHost"] = server.Host };
        foreach (var (key, value) in extra ?? [])
        {
            metadata[key] = value;
        }
        return Resources.Tenant("orders", "orders-token", appEndpoint: ordersApp?.ToString().TrimEnd('/'))
            + Resources.Tenant("billing", "billing-token", appEndpoint: billingApp?.ToString().TrimEnd('/'))
            + Resources.Component("config", "configuration.redis", metadata);
    }

    /// <summary>Records what the runtime posts to the app; its ask for the app's subscriptions gets an empty list.</summary>
    private static async Task Record(HttpContext context, Channel<(string, string)> posts)
    {
        if (HttpMethods.IsGet(context.Request.Method) && context.Request.Path == "/dapr/subscribe")
        {
            context.Response.StatusCode = 200;
            await context.Response.WriteAsync("[]");
            return;
        }
        using var reader = new StreamReader(context.Request.Body);
        posts.Writer.TryWrite((context.Request.Path.Value ?? "", await reader.ReadToEndAsync()));
        context.Response.StatusCode = 200;
    }

    /// <summary>Collects what a store hands a subscription.</summary>
    private sealed class Watcher : IConfigurationWatcher
    {
        private readonly Channel<IReadOnlyDictionary<string, ConfigurationItem>> _changes = Channel.CreateUnbounded<IReadOnlyDictionary<string, ConfigurationItem>>();

        public int Waiting => _changes.Reader.Count;

        public void Changed(IReadOnlyDictionary<string, ConfigurationItem> items) => _changes.Writer.TryWrite(items);

        public void Closed() => _changes.Writer.TryComplete();

        public async Task<IReadOnlyDictionary<string, ConfigurationItem>> NextAsync()
        {
            using var timeout = new CancellationTokenSource(Arrives);
            return await _changes.Reader.ReadAsync(timeout.Token);
        }
    }
}
