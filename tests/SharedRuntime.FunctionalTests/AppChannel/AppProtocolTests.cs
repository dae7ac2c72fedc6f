using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.AppChannel;
using SharedRuntime.Configuration;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.AppChannel;

/// <summary>
/// Invocation into apps that speak HTTP/2 without TLS (<c>appProtocol: h2c</c>) and HTTP/1.1, with real Kestrel apps:
/// what reaches the app and comes back, what another tenant cannot reach, and an app holding calls hung that costs
/// the other tenants of the same app server nothing.
/// </summary>
public sealed class AppProtocolTests : IAsyncLifetime
{
    private TestApp _h2cApp = null!;
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _hung;
    private readonly List<(string Callee, string Caller, string Protocol, string Connection)> _seen = [];

    public async Task InitializeAsync()
    {
        // One app server, h2c only (HTTP/2 by prior knowledge on a cleartext port), hosting several tenants' apps:
        // it tells them apart by the callee the runtime names. Calls into "stuck" hang until released.
        _h2cApp = await TestApp.StartAsync(HandleAsync, HttpProtocols.Http2);
    }

    public async Task DisposeAsync()
    {
        _release.TrySetResult();
        await _h2cApp.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        var callee = context.Request.Headers["dapr-callee-app-id"].ToString();
        lock (_seen)
        {
            _seen.Add((callee, context.Request.Headers["dapr-caller-app-id"].ToString(), context.Request.Protocol, context.Connection.Id));
        }
        if (callee == "stuck")
        {
            Interlocked.Increment(ref _hung);
            await _release.Task.WaitAsync(context.RequestAborted);
        }
        // The whole body first, then the answer: a client that sends all before it reads cannot be echoed to as it sends.
        var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body, context.RequestAborted);
        context.Response.Headers["X-Protocol"] = context.Request.Protocol;
        context.Response.ContentType = context.Request.ContentType ?? "text/plain";
        body.Position = 0;
        await body.CopyToAsync(context.Response.Body, context.RequestAborted);
    }

    private static string Acl(string name, string allowedCaller) => $"""
        apiVersion: dapr.io/v1alpha1
        kind: Configuration
        metadata:
          name: {name}
        spec:
          accessControl:
            defaultAction: deny
            policies:
              - appId: {allowedCaller}
                defaultAction: allow
        ---

        """;

    [Fact]
    public async Task An_h2c_app_is_called_over_http2_and_bodies_stream_both_ways()
    {
        await using var runtime = await TestRuntime.StartAsync(
            AppResources.Tenant("orders", "orders-token", null) +
            AppResources.Tenant("billing", "billing-token", _h2cApp.Address, "appProtocol: h2c"));
        var orders = runtime.Client("orders-token");
        var body = new byte[3 * 1024 * 1024]; // larger than any buffer on the way: it streams
        Random.Shared.NextBytes(body);
        using var content = new StreamContent(new MemoryStream(body));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");

        using var response = await orders.PostAsync("/v1.0/invoke/billing/method/echo", content);

        await StatusAsync(response, HttpStatusCode.OK);
        Assert.Equal("HTTP/2", response.Headers.GetValues("X-Protocol").Single());
        Assert.Equal("application/octet-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(body, await response.Content.ReadAsByteArrayAsync());
        lock (_seen)
        {
            Assert.Contains(_seen, s => s is ("billing", "orders", "HTTP/2", _));
        }
        Assert.Equal(AppProtocol.H2c, runtime.App.Services.GetRequiredService<AppChannels>().Find("billing")!.Protocol);
    }

    [Fact]
    public async Task A_tenant_denied_by_an_h2c_apps_access_control_never_reaches_it()
    {
        await using var runtime = await TestRuntime.StartAsync(
            AppResources.Tenant("orders", "orders-token", null) +
            AppResources.Tenant("stranger", "stranger-token", null) +
            AppResources.Tenant("billing", "billing-token", _h2cApp.Address, "appProtocol: h2c\nconfig: billing-acl") +
            Acl("billing-acl", "orders"));

        using var denied = await runtime.Client("stranger-token").GetAsync("/v1.0/invoke/billing/method/invoices");
        using var allowed = await runtime.Client("orders-token").GetAsync("/v1.0/invoke/billing/method/invoices");

        await ErrorAsync(denied, HttpStatusCode.Forbidden, "ERR_DIRECT_INVOKE");
        await StatusAsync(allowed, HttpStatusCode.OK);
        lock (_seen)
        {
            Assert.DoesNotContain(_seen, s => s.Caller == "stranger");
        }
    }

    [Fact]
    public async Task Each_tenant_is_called_in_the_protocol_it_asked_for()
    {
        await using var http1 = await TestApp.StartAsync(HandleAsync, HttpProtocols.Http1);
        await using var runtime = await TestRuntime.StartAsync(
            AppResources.Tenant("orders", "orders-token", null) +
            AppResources.Tenant("billing", "billing-token", _h2cApp.Address, "appProtocol: h2c") +
            AppResources.Tenant("shipping", "shipping-token", http1.Address));
        var orders = runtime.Client("orders-token");

        using var toBilling = await orders.PostAsync("/v1.0/invoke/billing/method/a", Json("{}"));
        using var toShipping = await orders.PostAsync("/v1.0/invoke/shipping/method/a", Json("{}"));

        await StatusAsync(toBilling, HttpStatusCode.OK);
        await StatusAsync(toShipping, HttpStatusCode.OK);
        Assert.Equal("HTTP/2", toBilling.Headers.GetValues("X-Protocol").Single());
        Assert.Equal("HTTP/1.1", toShipping.Headers.GetValues("X-Protocol").Single());
    }

    [Theory]
    [InlineData("h2c")]
    [InlineData("http")]
    public async Task An_app_holding_calls_hung_takes_no_connection_of_another_tenant_of_the_same_app_server_and_fails_none_of_its_calls(string protocol)
    {
        await using var app = protocol == "h2c" ? null : await TestApp.StartAsync(HandleAsync, HttpProtocols.Http1);
        var address = app?.Address ?? _h2cApp.Address;
        var protocolLine = protocol == "h2c" ? "appProtocol: h2c\n" : "";
        await using var runtime = await TestRuntime.StartAsync(
            AppResources.Tenant("noisy", "noisy-token", null) +
            AppResources.Tenant("quiet", "quiet-token", address, protocolLine) +
            AppResources.Tenant("stuck", "stuck-token", address, protocolLine + """
                appChannel:
                  maxConcurrency: 4
                  maxQueue: 0
                """));
        var noisy = runtime.Client("noisy-token");
        var quiet = runtime.Client("quiet-token");
        using (var first = await quiet.GetAsync("/v1.0/invoke/quiet/method/warm"))
        {
            await StatusAsync(first, HttpStatusCode.OK);
        }

        // The stuck app takes all of its four slots and holds them, on connections of its own: none of them is the
        // connection the other tenant's call left open to the same server.
        var held = Enumerable.Range(0, 4).Select(_ => noisy.GetAsync("/v1.0/invoke/stuck/method/work")).ToArray();
        await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref _hung) == 4), TimeSpan.FromSeconds(10), "the stuck app holds four calls");
        lock (_seen)
        {
            var quietConnections = _seen.Where(s => s.Callee == "quiet").Select(s => s.Connection).ToHashSet();
            Assert.DoesNotContain(_seen, s => s.Callee == "stuck" && quietConnections.Contains(s.Connection));
        }

        // A fifth call into it is refused at once; every call of the other tenant into its own app, on the same
        // server, is answered, also many at once.
        using var refused = await noisy.GetAsync("/v1.0/invoke/stuck/method/work");
        await ErrorAsync(refused, HttpStatusCode.TooManyRequests, "ERR_TENANT_APP_BUSY");
        var answers = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => quiet.PostAsync("/v1.0/invoke/quiet/method/work", Json($"{{\"n\":{i}}}"))));
        foreach (var (answer, i) in answers.Select((a, i) => (a, i)))
        {
            await StatusAsync(answer, HttpStatusCode.OK);
            Assert.Equal($"{{\"n\":{i}}}", await answer.Content.ReadAsStringAsync());
            answer.Dispose();
        }

        _release.TrySetResult();
        foreach (var call in held)
        {
            using var answer = await call.WaitAsync(TimeSpan.FromSeconds(10));
            await StatusAsync(answer, HttpStatusCode.OK);
        }
    }
}
