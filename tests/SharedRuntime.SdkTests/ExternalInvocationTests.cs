using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapr.Client;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Http;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.SdkTests;

/// <summary>
/// Invocation of services outside the runtime: an HTTPEndpoint by name (with its headers added) and a URL in place of
/// the app-id, limited to the operator's allowlist, scoped per tenant, each caller on its own channel.
/// </summary>
public sealed class ExternalInvocationTests : IAsyncLifetime
{
    private TestRuntime _runtime = null!;
    private TestApp _weather = null!;
    private TestApp _billingApp = null!;
    private int _downPort;
    private int _hungCalls;
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public sealed record Echo(string Method, string Path, string Query, string ApiKey, string Token, string Caller);

    public async Task InitializeAsync()
    {
        _weather = await TestApp.StartAsync(async context =>
        {
            if (context.Request.Path == "/hang")
            {
                Interlocked.Increment(ref _hungCalls);
                await _release.Task.WaitAsync(context.RequestAborted);
            }
            await context.Response.WriteAsJsonAsync(new Echo(context.Request.Method, context.Request.Path, context.Request.QueryString.Value ?? "",
                context.Request.Headers["X-Api-Key"].ToString(), context.Request.Headers["dapr-api-token"].ToString(),
                context.Request.Headers["dapr-caller-app-id"].ToString()));
        });
        _billingApp = await TestApp.StartAsync(static context => context.Response.WriteAsync("billing"));
        _downPort = TestRuntime.FreePorts(1)[0];
        _runtime = await TestRuntime.StartAsync(
            $"""
            apiVersion: dapr.io/v1alpha1
            kind: HTTPEndpoint
            metadata:
              name: weather
            spec:
              baseUrl: {_weather.Address.ToString().TrimEnd('/')}/v2
              headers:
                - name: X-Api-Key
                  value: weather-key
            scopes:
              - orders
            ---
            apiVersion: dapr.io/v1alpha1
            kind: HTTPEndpoint
            metadata:
              name: down
            spec:
              baseUrl: http://127.0.0.1:{_downPort}
            ---

            """ +
            Resources.Tenant("orders", "orders-token") +
            Resources.Tenant("shipping", "shipping-token") +
            Resources.Tenant("billing", "billing-token", appEndpoint: _billingApp.Address.ToString().TrimEnd('/')),
            o => o with { AllowedInvokeHosts = ["127.0.0.1", "169.254.169.254"] });
    }

    public async Task DisposeAsync()
    {
        _release.TrySetResult();
        await _runtime.DisposeAsync();
        await _weather.DisposeAsync();
        await _billingApp.DisposeAsync();
    }

    private DaprClient Client(string token) => new DaprClientBuilder()
        .UseHttpEndpoint(_runtime.HttpAddress.ToString())
        .UseGrpcEndpoint(_runtime.GrpcAddress.ToString())
        .UseDaprApiToken(token)
        .Build();

    private static async Task<(HttpStatusCode Status, string ErrorCode, string Message)> ErrorOf(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        using var json = JsonDocument.Parse(body);
        return (response.StatusCode, json.RootElement.GetProperty("errorCode").GetString()!, json.RootElement.GetProperty("message").GetString()!);
    }

    private string WeatherUrl => _weather.Address.ToString().TrimEnd('/');

#pragma warning disable CS0618 // InvokeMethodAsync is discouraged by the SDK but still what many apps call
    [Fact]
    public async Task AnHttpEndpointIsInvokedByNameWithItsHeaders()
    {
        using var orders = Client("orders-token");

        var echo = await orders.InvokeMethodAsync<Echo>(HttpMethod.Get, "weather", "forecast/today?days=3");

        Assert.Equal("GET", echo.Method);
        Assert.Equal("/v2/forecast/today", echo.Path);
        Assert.Equal("weather-key", echo.ApiKey);
        Assert.Equal("", echo.Token); // the caller's token never leaves the runtime
        Assert.Equal("", echo.Caller);
    }

    [Fact]
    public async Task ATenantOutsideTheScopesCannotInvokeTheEndpoint()
    {
        using var shipping = Client("shipping-token");

        var error = await Assert.ThrowsAsync<InvocationException>(() => shipping.InvokeMethodAsync<Echo>(HttpMethod.Get, "weather", "forecast"));

        Assert.Equal(HttpStatusCode.NotFound, error.Response?.StatusCode);
        var (_, code, _) = await ErrorOf(error.Response!);
        Assert.Equal("ERR_DIRECT_INVOKE", code);
    }

    [Fact]
    public async Task TheMetadataApiListsTheEndpointsATenantMayInvoke()
    {
        static async Task<string[]> EndpointsOf(HttpClient client)
        {
            using var json = JsonDocument.Parse(await client.GetStringAsync("/v1.0/metadata"));
            return [.. json.RootElement.GetProperty("httpEndpoints").EnumerateArray().Select(e => e.GetProperty("name").GetString()!)];
        }

        Assert.Equal(["down", "weather"], await EndpointsOf(_runtime.Client("orders-token")));
        Assert.Equal(["down"], await EndpointsOf(_runtime.Client("shipping-token")));
    }
#pragma warning restore CS0618

    [Fact]
    public async Task AnAllowedUrlIsInvokedInPlainAndEncodedForm()
    {
        var orders = _runtime.Client("orders-token");

        var plain = await orders.GetFromJsonAsync<Echo>($"/v1.0/invoke/{WeatherUrl}/method/forecast?days=1");
        var encoded = await orders.GetFromJsonAsync<Echo>($"/v1.0/invoke/{Uri.EscapeDataString(WeatherUrl)}/method/forecast");

        Assert.Equal(("/forecast", "?days=1", ""), (plain!.Path, plain.Query, plain.ApiKey)); // no endpoint, no headers added
        Assert.Equal("/forecast", encoded!.Path);
    }

    [Fact]
    public async Task GrpcInvokeServiceReachesAnHttpEndpoint()
    {
        using var channel = GrpcChannel.ForAddress(_runtime.GrpcAddress);
        var client = new Autogen.Dapr.DaprClient(channel);

        var response = await client.InvokeServiceAsync(new Autogen.InvokeServiceRequest
        {
            Id = "weather",
            Message = new Autogen.InvokeRequest
            {
                Method = "forecast",
                HttpExtension = new Autogen.HTTPExtension { Verb = Autogen.HTTPExtension.Types.Verb.Get },
            },
        }, new Metadata { { "dapr-api-token", "orders-token" } });

        var echo = JsonSerializer.Deserialize<Echo>(response.Data.Value.ToStringUtf8(), new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        Assert.Equal(("/v2/forecast", "weather-key"), (echo.Path, echo.ApiKey));
    }

    [Theory]
    [InlineData("http://169.254.169.254/latest/meta-data", "link-local")]
    [InlineData("http://10.20.30.40:8080", "does not allow")]
    [InlineData("http://localhost:{runtime}", "runtime's own ports")]
    [InlineData("{billing}", "tenant's app")]
    public async Task ADestinationOutsideTheAllowlistIsRefused(string url, string problem)
    {
        url = url.Replace("{runtime}", _runtime.Options.DaprHttpPort.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("{billing}", _billingApp.Address.ToString().TrimEnd('/'), StringComparison.Ordinal);
        var orders = _runtime.Client("orders-token");

        using var response = await orders.GetAsync($"/v1.0/invoke/{url}/method/anything");

        var (status, code, message) = await ErrorOf(response);
        Assert.Equal((HttpStatusCode.Forbidden, "ERR_DIRECT_INVOKE"), (status, code));
        Assert.Contains(problem, message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithoutAnAllowlistNoUrlNorEndpointIsInvoked()
    {
        await using var runtime = await TestRuntime.StartAsync(
            $"""
            apiVersion: dapr.io/v1alpha1
            kind: HTTPEndpoint
            metadata:
              name: weather
            spec:
              baseUrl: {WeatherUrl}
            ---

            """ + Resources.Tenant("orders", "orders-token"));
        var orders = runtime.Client("orders-token");

        using var byUrl = await orders.GetAsync($"/v1.0/invoke/{WeatherUrl}/method/forecast");
        using var byName = await orders.GetAsync("/v1.0/invoke/weather/method/forecast");

        Assert.Equal(HttpStatusCode.Forbidden, byUrl.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, byName.StatusCode);
        Assert.Contains("--allowed-invoke-hosts is empty", (await ErrorOf(byName)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnEndpointThatIsDownFailsItsCallerWithoutOpeningAnotherTenantsBreaker()
    {
        var orders = _runtime.Client("orders-token");
        var shipping = _runtime.Client("shipping-token");

        for (var i = 0; i < Configuration.AppChannelConfig.Default.BreakAfterFailures; i++)
        {
            using var failed = await orders.GetAsync("/v1.0/invoke/down/method/status");
            Assert.Equal((HttpStatusCode.InternalServerError, "ERR_DIRECT_INVOKE"), ((await ErrorOf(failed)).Status, (await ErrorOf(failed)).ErrorCode));
        }
        using var broken = await orders.GetAsync("/v1.0/invoke/down/method/status");
        Assert.Contains("circuit breaker", (await ErrorOf(broken)).Message, StringComparison.Ordinal);

        using var other = await shipping.GetAsync("/v1.0/invoke/down/method/status");
        var (status, code, message) = await ErrorOf(other);
        Assert.Equal((HttpStatusCode.InternalServerError, "ERR_DIRECT_INVOKE"), (status, code));
        Assert.DoesNotContain("circuit breaker", message, StringComparison.Ordinal); // shipping's own channel tried, and found it down
    }

    [Fact]
    public async Task ACallerHoldingEveryOneOfItsSlotsDoesNotStarveAnotherCaller()
    {
        var orders = _runtime.Client("orders-token");
        var shipping = _runtime.Client("shipping-token");
        var slots = AppChannel.ExternalEndpoints.ChannelConfig.MaxConcurrency;

        var hung = Enumerable.Range(0, slots).Select(_ => orders.GetAsync($"/v1.0/invoke/{WeatherUrl}/method/hang")).ToList();
        await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref _hungCalls) >= slots), TimeSpan.FromSeconds(20), "orders' calls reach the service");

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var echo = await shipping.GetFromJsonAsync<Echo>($"/v1.0/invoke/{WeatherUrl}/method/fast", timeout.Token);
        Assert.Equal("/fast", echo!.Path);

        _release.TrySetResult();
        foreach (var response in await Task.WhenAll(hung))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            response.Dispose();
        }
    }
}
