using System.Net;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.Http;

public sealed class AuthenticationTests : IAsyncLifetime
{
    private TestRuntime _runtime = null!;

    public async Task InitializeAsync() =>
        _runtime = await TestRuntime.StartAsync(Resources.Tenant("orders", "orders-token") + Resources.Component("store", "state.in-memory"));

    public async Task DisposeAsync() => await _runtime.DisposeAsync();

    [Fact]
    public async Task MissingTokenIs401WithDaprBody()
    {
        var response = await _runtime.Client(null).GetAsync("/v1.0/state/store/k");
        await ErrorAsync(response, HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
    }

    [Fact]
    public async Task UnknownTokenIs401()
    {
        var response = await _runtime.Client("orders-token-but-longer").GetAsync("/v1.0/metadata");
        await ErrorAsync(response, HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
        response = await _runtime.Client(new string('x', 5000)).GetAsync("/v1.0/metadata");
        Assert.True(response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.RequestHeaderFieldsTooLarge or HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task HealthNeedsNoToken()
    {
        var client = _runtime.Client(null);
        await StatusAsync(await client.GetAsync("/v1.0/healthz"), HttpStatusCode.NoContent);
        await StatusAsync(await client.GetAsync("/v1.0/healthz/outbound"), HttpStatusCode.NoContent);
    }

    [Fact]
    public async Task MetadataNamesTheTenantOfTheToken()
    {
        var body = await _runtime.Client("orders-token").GetStringAsync("/v1.0/metadata");
        Assert.Contains("\"id\":\"orders\"", body);
    }

    [Fact]
    public async Task UnknownPathWithAValidTokenIs404()
    {
        var response = await _runtime.Client("orders-token").GetAsync("/v1.0/nothing-here");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task MetricsAreNotServedOnTheApiPortAndTheApiIsNotServedOnTheMetricsPort()
    {
        var api = await _runtime.Client("orders-token").GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.NotFound, api.StatusCode);
        using var metricsClient = new HttpClient { BaseAddress = _runtime.MetricsAddress };
        metricsClient.DefaultRequestHeaders.Add("dapr-api-token", "orders-token");
        var state = await metricsClient.GetAsync("/v1.0/state/store/k");
        Assert.Equal(HttpStatusCode.NotFound, state.StatusCode);
    }
}
