using System.Net;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Http;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.FunctionalTests.AppChannel;

/// <summary>Service invocation between tenants over HTTP: what reaches the app, what comes back, and what is refused.</summary>
public sealed class InvocationTests : IAsyncLifetime
{
    private TestRuntime _runtime = null!;
    private TestApp _billingApp = null!;
    private readonly List<(string Method, string PathAndQuery, IHeaderDictionary Headers, int BodyLength)> _seen = [];

    public async Task InitializeAsync()
    {
        _billingApp = await TestApp.StartAsync(async context =>
        {
            var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            lock (_seen)
            {
                _seen.Add((context.Request.Method, context.Request.Path + context.Request.QueryString, new HeaderDictionary(context.Request.Headers.ToDictionary()), (int)body.Length));
            }
            switch (context.Request.Path.Value)
            {
                case "/created":
                    context.Response.StatusCode = 201;
                    context.Response.Headers["X-Order"] = "42";
                    await context.Response.WriteAsync("made");
                    break;
                case "/teapot":
                    context.Response.StatusCode = 418;
                    await context.Response.WriteAsync("short and stout");
                    break;
                case "/echo":
                    context.Response.ContentType = context.Request.ContentType;
                    body.Position = 0;
                    await body.CopyToAsync(context.Response.Body);
                    break;
                default:
                    await context.Response.WriteAsync($"{context.Request.Method} {context.Request.Path}");
                    break;
            }
        });
        _runtime = await TestRuntime.StartAsync(
            AppResources.Tenant("orders", "orders-token", null) +
            AppResources.Tenant("billing", "billing-token", _billingApp.Address, """
                config: billing-acl
                appChannel:
                  appApiToken:
                    value: "billing-app-token"
                """) +
            AppResources.Tenant("shipping", "shipping-token", null) +
            AppResources.Tenant("stranger", "stranger-token", null) +
            """
            apiVersion: dapr.io/v1alpha1
            kind: Configuration
            metadata:
              name: billing-acl
            spec:
              accessControl:
                defaultAction: deny
                policies:
                  - appId: orders
                    defaultAction: allow
                    operations:
                      - name: /admin/**
                        httpVerb: ["*"]
                        action: deny
                  - appId: shipping
                    defaultAction: deny
                    operations:
                      - name: /status/*
                        httpVerb: ["GET"]
                        action: allow
            """,
            o => o with { DefaultLimits = o.DefaultLimits with { MaxRequestBodyBytes = 8 * 1024 * 1024 } });
    }

    public async Task DisposeAsync()
    {
        await _runtime.DisposeAsync();
        await _billingApp.DisposeAsync();
    }

    private HttpClient Orders => _runtime.Client("orders-token");

    private (string Method, string PathAndQuery, IHeaderDictionary Headers, int BodyLength) LastSeen()
    {
        lock (_seen)
        {
            return _seen[^1];
        }
    }

    [Theory]
    [InlineData("GET")]
    [InlineData("POST")]
    [InlineData("PUT")]
    [InlineData("DELETE")]
    [InlineData("PATCH")]
    public async Task Every_verb_reaches_the_app_with_its_path_and_query(string verb)
    {
        using var request = new HttpRequestMessage(new HttpMethod(verb), "/v1.0/invoke/billing/method/orders/7?expand=lines&x=1");
        if (verb is "POST" or "PUT" or "PATCH")
        {
            request.Content = Json("""{"n":1}""");
        }
        using var response = await Orders.SendAsync(request);

        await StatusAsync(response, HttpStatusCode.OK);
        Assert.Equal($"{verb} /orders/7", await response.Content.ReadAsStringAsync());
        var seen = LastSeen();
        Assert.Equal(verb, seen.Method);
        Assert.Equal("/orders/7?expand=lines&x=1", seen.PathAndQuery);
    }

    [Fact]
    public async Task The_apps_status_headers_and_body_come_back_unchanged()
    {
        using var created = await Orders.PostAsync("/v1.0/invoke/billing/method/created", Json("{}"));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal("42", created.Headers.GetValues("X-Order").Single());
        Assert.Equal("made", await created.Content.ReadAsStringAsync());

        using var teapot = await Orders.GetAsync("/v1.0/invoke/billing/method/teapot");
        Assert.Equal((HttpStatusCode)418, teapot.StatusCode);
        Assert.Equal("short and stout", await teapot.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task The_callers_token_never_reaches_the_app_and_the_caller_id_cannot_be_forged()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1.0/invoke/billing/method/whoami");
        request.Headers.Add("dapr-caller-app-id", "admin");
        request.Headers.Add("X-Custom", "kept");
        request.Headers.Add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        using var response = await Orders.SendAsync(request);
        await StatusAsync(response, HttpStatusCode.OK);

        var headers = LastSeen().Headers;
        Assert.Equal("orders", headers["dapr-caller-app-id"].ToString());
        Assert.Equal("billing", headers["dapr-callee-app-id"].ToString());
        Assert.Equal("billing-app-token", headers["dapr-api-token"].ToString());
        Assert.DoesNotContain("orders-token", headers.SelectMany(h => h.Value.Select(v => v ?? "")));
        Assert.Equal("kept", headers["X-Custom"].ToString());
        Assert.Equal("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", headers["traceparent"].ToString());
    }

    [Fact]
    public async Task A_call_without_traceparent_starts_a_trace()
    {
        using var response = await Orders.GetAsync("/v1.0/invoke/billing/method/trace");
        await StatusAsync(response, HttpStatusCode.OK);
        Assert.Matches("^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$", LastSeen().Headers["traceparent"].ToString());
    }

    [Fact]
    public async Task The_dapr_app_id_header_invokes_on_any_path()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/orders/9/pay?now=1") { Content = Json("{}") };
        request.Headers.Add("dapr-app-id", "billing");
        using var response = await Orders.SendAsync(request);

        await StatusAsync(response, HttpStatusCode.OK);
        Assert.Equal("POST /orders/9/pay", await response.Content.ReadAsStringAsync());
        Assert.Equal("/orders/9/pay?now=1", LastSeen().PathAndQuery);
        Assert.False(LastSeen().Headers.ContainsKey("dapr-app-id"));
    }

    [Fact]
    public async Task A_large_body_streams_through_both_ways()
    {
        var payload = new byte[5 * 1024 * 1024];
        Random.Shared.NextBytes(payload);
        using var content = new ByteArrayContent(payload);
        content.Headers.ContentType = new("application/octet-stream");
        using var response = await Orders.PostAsync("/v1.0/invoke/billing/method/echo", content);

        await StatusAsync(response, HttpStatusCode.OK);
        Assert.Equal(payload, await response.Content.ReadAsByteArrayAsync());
        Assert.Equal(payload.Length, LastSeen().BodyLength);
    }

    [Fact]
    public async Task Dot_segments_cannot_climb_out_of_the_method_path()
    {
        // Kestrel resolves dot segments before routing; whatever is left of the path, the app never sees "..".
        using var encoded = await Orders.GetAsync("/v1.0/invoke/billing/method/a/%2E%2E/%2E%2E/secret");
        using var viaHeader = new HttpRequestMessage(HttpMethod.Get, "/a/%2E%2E/b");
        viaHeader.Headers.Add("dapr-app-id", "billing");
        using var second = await Orders.SendAsync(viaHeader);
        lock (_seen)
        {
            Assert.All(_seen, s => Assert.DoesNotContain("..", s.PathAndQuery));
        }
    }

    [Fact]
    public async Task An_unknown_app_or_one_without_endpoint_is_404()
    {
        await ErrorAsync(await Orders.GetAsync("/v1.0/invoke/nobody/method/x"), HttpStatusCode.NotFound, "ERR_DIRECT_INVOKE");
        await ErrorAsync(await _runtime.Client("billing-token").GetAsync("/v1.0/invoke/orders/method/x"), HttpStatusCode.NotFound, "ERR_DIRECT_INVOKE");
    }

    [Fact]
    public async Task Invocation_needs_a_token()
    {
        await ErrorAsync(await _runtime.Client(null).GetAsync("/v1.0/invoke/billing/method/x"), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
    }

    [Fact]
    public async Task Access_control_allows_and_denies_by_caller_operation_and_verb()
    {
        var shipping = _runtime.Client("shipping-token");
        var stranger = _runtime.Client("stranger-token");
        int Calls()
        {
            lock (_seen)
            {
                return _seen.Count;
            }
        }

        await StatusAsync(await Orders.GetAsync("/v1.0/invoke/billing/method/anything"), HttpStatusCode.OK);
        await StatusAsync(await shipping.GetAsync("/v1.0/invoke/billing/method/status/7"), HttpStatusCode.OK);

        var before = Calls();
        await ErrorAsync(await Orders.GetAsync("/v1.0/invoke/billing/method/admin/users/1"), HttpStatusCode.Forbidden, "ERR_DIRECT_INVOKE");
        await ErrorAsync(await shipping.PostAsync("/v1.0/invoke/billing/method/status/7", Json("{}")), HttpStatusCode.Forbidden, "ERR_DIRECT_INVOKE");
        await ErrorAsync(await shipping.GetAsync("/v1.0/invoke/billing/method/status/7/deep"), HttpStatusCode.Forbidden, "ERR_DIRECT_INVOKE");
        await ErrorAsync(await stranger.GetAsync("/v1.0/invoke/billing/method/anything"), HttpStatusCode.Forbidden, "ERR_DIRECT_INVOKE");
        using var viaHeader = new HttpRequestMessage(HttpMethod.Get, "/admin/users/1");
        viaHeader.Headers.Add("dapr-app-id", "billing");
        await ErrorAsync(await Orders.SendAsync(viaHeader), HttpStatusCode.Forbidden, "ERR_DIRECT_INVOKE");
        Assert.Equal(before, Calls());
    }

    [Theory]
    [InlineData("/v1.0/invoke/billing/method/ADMIN/users/1", 403)]
    [InlineData("/v1.0/invoke/billing/method/Admin/Users", 403)]
    [InlineData("/v1.0/invoke/billing/method/%61dmin/users", 403)]
    [InlineData("/v1.0/invoke/billing/method/admin//users", 403)]
    [InlineData("/v1.0/invoke/billing/method/admin/./users", 403)]
    [InlineData("/v1.0/invoke/billing/method/public/../admin/users", 403)]
    [InlineData("/v1.0/invoke/billing/method/admin%2Fusers", 400)]
    [InlineData("/v1.0/invoke/billing/method/admin%2fusers", 400)]
    [InlineData("/v1.0/invoke/billing/method/admin%5Cusers", 400)]
    [InlineData("/v1.0/invoke/billing/method/admin\\users", 400)]
    [InlineData("/v1.0/invoke/billing/method/..%2Fadmin", 400)]
    [InlineData("/v1.0/invoke/billing/method/x/%2E%2E%2Fadmin/users", 400)]
    [InlineData("/v1.0/invoke/billing/method/admin%252Fusers", 400)]
    [InlineData("/ADMIN/users/1", 403)]
    [InlineData("/admin%2Fusers", 400)]
    [InlineData("/%61dmin/users", 403)]
    public async Task Access_control_cannot_be_bypassed_by_case_or_encoding(string target, int status)
    {
        var headerForm = !target.StartsWith("/v1.0/", StringComparison.Ordinal);
        var (answered, body) = await InvocationFaultTests.RawAsync(_runtime.HttpAddress,
            $"GET {target} HTTP/1.1\r\nHost: localhost\r\ndapr-api-token: orders-token\r\n{(headerForm ? "dapr-app-id: billing\r\n" : "")}Connection: close\r\n\r\n");
        Assert.True(answered == status, $"{target}: {answered} {body}");
        Assert.Contains("ERR_DIRECT_INVOKE", body);
        lock (_seen)
        {
            Assert.DoesNotContain(_seen, s => s.PathAndQuery.Contains("admin", StringComparison.OrdinalIgnoreCase));
        }
    }

    [Theory]
    [InlineData("ADMIN/users/1", StatusCode.PermissionDenied)]
    [InlineData("%61dmin/users", StatusCode.PermissionDenied)]
    [InlineData("public/../admin/users", StatusCode.PermissionDenied)]
    [InlineData("admin%2Fusers", StatusCode.InvalidArgument)]
    [InlineData("admin\\users", StatusCode.InvalidArgument)]
    [InlineData("%2E%2E/admin/users", StatusCode.InvalidArgument)]
    public async Task Access_control_over_grpc_judges_the_same_path(string method, StatusCode expected)
    {
        using var channel = GrpcChannel.ForAddress(_runtime.GrpcAddress);
        var client = new Autogen.Dapr.DaprClient(channel);
        var call = client.InvokeServiceAsync(new Autogen.InvokeServiceRequest
        {
            Id = "billing",
            Message = new Dapr.Client.Autogen.Grpc.v1.InvokeRequest { Method = method, HttpExtension = new() { Verb = Dapr.Client.Autogen.Grpc.v1.HTTPExtension.Types.Verb.Get } },
        }, new Metadata { { "dapr-api-token", "orders-token" } });
        var error = await Assert.ThrowsAsync<RpcException>(async () => await call);
        Assert.Equal(expected, error.StatusCode);
        lock (_seen)
        {
            Assert.DoesNotContain(_seen, s => s.PathAndQuery.Contains("admin", StringComparison.OrdinalIgnoreCase));
        }
    }

    [Fact]
    public async Task An_unmatched_path_without_dapr_app_id_is_a_dapr_404()
    {
        await ErrorAsync(await Orders.GetAsync("/v1.0/nothing-here"), HttpStatusCode.NotFound, "ERR_NOT_FOUND");
    }

    [Fact]
    public async Task Invocations_are_counted_for_the_caller()
    {
        await StatusAsync(await Orders.GetAsync("/v1.0/invoke/billing/method/counted"), HttpStatusCode.OK);
        using var metrics = new HttpClient();
        var text = await metrics.GetStringAsync(new Uri(_runtime.MetricsAddress, "/metrics"));
        Assert.Contains(text.Split('\n'), line => line.StartsWith("sharedruntime_requests_total{", StringComparison.Ordinal) &&
            line.Contains("api=\"invoke\"", StringComparison.Ordinal) && line.Contains("app_id=\"orders\"", StringComparison.Ordinal) && line.Contains("code=\"200\"", StringComparison.Ordinal));
    }
}
