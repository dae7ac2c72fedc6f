using System.Net;
using System.Text.Json;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>The configuration route and the alpha lock routes the JS SDK uses, with a second tenant beside.</summary>
public sealed class ConfigurationAndLockApiTests : IAsyncLifetime
{
    private TestRuntime _runtime = null!;

    public async Task InitializeAsync() =>
        _runtime = await TestRuntime.StartAsync(
            Resources.Tenant("orders", "orders-token") +
            Resources.Tenant("billing", "billing-token") +
            Resources.Component("config", "configuration.in-memory", new Dictionary<string, string> { ["orders||color"] = "blue", ["billing||color"] = "red" }) +
            Resources.Component("locks", "lock.in-memory"));

    public async Task DisposeAsync() => await _runtime.DisposeAsync();

    [Fact]
    public async Task ConfigurationAnswersOnlyTheCallersItems()
    {
        using var orders = JsonDocument.Parse(await _runtime.Client("orders-token").GetStringAsync("/v1.0/configuration/config?key=color"));
        Assert.Equal("blue", orders.RootElement.GetProperty("color").GetProperty("value").GetString());
        using var billing = JsonDocument.Parse(await _runtime.Client("billing-token").GetStringAsync("/v1.0-alpha1/configuration/config"));
        Assert.Equal("red", billing.RootElement.GetProperty("color").GetProperty("value").GetString());
        Assert.Single(billing.RootElement.EnumerateObject());
        await ErrorAsync(await _runtime.Client("orders-token").GetAsync("/v1.0/configuration/nope?key=color"), HttpStatusCode.BadRequest, "ERR_CONFIGURATION_STORE_NOT_FOUND");
    }

    [Fact]
    public async Task HttpSubscriptionsAreAnsweredAndOnlyTheirOwnerEndsThem()
    {
        await using var app = await TestApp.StartAsync(context => { context.Response.StatusCode = 200; return Task.CompletedTask; });
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("orders", "orders-token", appEndpoint: app.Address.ToString().TrimEnd('/')) +
            Resources.Tenant("billing", "billing-token") +
            Resources.Component("config", "configuration.in-memory", new Dictionary<string, string> { ["orders||color"] = "blue" }));
        var orders = runtime.Client("orders-token");
        var billing = runtime.Client("billing-token");

        var subscribed = await orders.GetAsync("/v1.0-alpha1/configuration/config/subscribe?key=color");
        await StatusAsync(subscribed, HttpStatusCode.OK);
        using var json = JsonDocument.Parse(await subscribed.Content.ReadAsStringAsync());
        var id = json.RootElement.GetProperty("id").GetString();
        Assert.False(string.IsNullOrEmpty(id));

        await ErrorAsync(await billing.GetAsync("/v1.0/configuration/config/subscribe"), HttpStatusCode.BadRequest, "ERR_APP_CHANNEL_NIL");
        await ErrorAsync(await orders.GetAsync("/v1.0/configuration/nope/subscribe"), HttpStatusCode.BadRequest, "ERR_CONFIGURATION_STORE_NOT_FOUND");
        await ErrorAsync(await billing.GetAsync($"/v1.0/configuration/config/{id}/unsubscribe"), HttpStatusCode.BadRequest, "ERR_CONFIGURATION_UNSUBSCRIBE");
        await StatusAsync(await orders.GetAsync($"/v1.0-alpha1/configuration/config/{id}/unsubscribe"), HttpStatusCode.OK);
        await ErrorAsync(await orders.GetAsync($"/v1.0-alpha1/configuration/{id}/unsubscribe"), HttpStatusCode.BadRequest, "ERR_CONFIGURATION_UNSUBSCRIBE");
    }

    [Fact]
    public async Task LocksOverHttpArePerTenant()
    {
        var orders = _runtime.Client("orders-token");
        var billing = _runtime.Client("billing-token");
        async Task<bool> Lock(HttpClient client, string owner)
        {
            var response = await client.PostAsync("/v1.0-alpha1/lock/locks", Json($$"""{"resourceId":"r1","lockOwner":"{{owner}}","expiryInSeconds":30}"""));
            await StatusAsync(response, HttpStatusCode.OK);
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            return json.RootElement.GetProperty("success").GetBoolean();
        }
        async Task<int> Unlock(HttpClient client, string owner)
        {
            var response = await client.PostAsync("/v1.0-alpha1/unlock/locks", Json($$"""{"resourceId":"r1","lockOwner":"{{owner}}"}"""));
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            return json.RootElement.GetProperty("status").GetInt32();
        }

        Assert.True(await Lock(orders, "a"));
        Assert.False(await Lock(orders, "b"));
        Assert.Equal(1, await Unlock(billing, "a"));
        Assert.True(await Lock(billing, "b"));
        Assert.Equal(2, await Unlock(orders, "b"));
        Assert.Equal(0, await Unlock(orders, "a"));
        await ErrorAsync(await orders.PostAsync("/v1.0-alpha1/lock/locks", Json("""{"resourceId":"r2","lockOwner":"a","expiryInSeconds":0}""")), HttpStatusCode.BadRequest, "ERR_MALFORMED_REQUEST");
    }
}
