using System.Net;
using System.Text;
using Dapr.Client;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Http;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.SdkTests;

/// <summary>Service invocation with the unmodified Dapr SDK (HTTP) and Dapr's gRPC InvokeService, between two tenants.</summary>
public sealed class InvocationSdkTests : IAsyncLifetime
{
    private TestRuntime _runtime = null!;
    private TestApp _billingApp = null!;
    private DaprClient _orders = null!;
    private DaprClient _shipping = null!;

    public async Task InitializeAsync()
    {
        _billingApp = await TestApp.StartAsync(async context =>
        {
            if (context.Request.Path == "/missing")
            {
                context.Response.StatusCode = 404;
                return;
            }
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync();
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(
                $$"""{"method":"{{context.Request.Method}}","path":"{{context.Request.Path}}","query":"{{context.Request.QueryString}}","caller":"{{context.Request.Headers["dapr-caller-app-id"]}}","body":{{(body.Length == 0 ? "null" : body)}}}""");
        });
        _runtime = await TestRuntime.StartAsync(
            $"""
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: billing
            spec:
              apiToken: billing-token
              appEndpoint: {_billingApp.Address.ToString().TrimEnd('/')}
              config: billing-acl
            ---
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
            ---

            """ +
            Resources.Tenant("orders", "orders-token") +
            Resources.Tenant("shipping", "shipping-token"));
        _orders = Client("orders-token");
        _shipping = Client("shipping-token");
    }

    public async Task DisposeAsync()
    {
        _orders.Dispose();
        _shipping.Dispose();
        await _runtime.DisposeAsync();
        await _billingApp.DisposeAsync();
    }

    private DaprClient Client(string token) => new DaprClientBuilder()
        .UseHttpEndpoint(_runtime.HttpAddress.ToString())
        .UseGrpcEndpoint(_runtime.GrpcAddress.ToString())
        .UseDaprApiToken(token)
        .Build();

    public sealed record Invoice(string Id, int Total);

    public sealed record Echo(string Method, string Path, string Query, string Caller, Invoice? Body);

#pragma warning disable CS0618 // InvokeMethodAsync is discouraged by the SDK but still what many apps call
    [Fact]
    public async Task InvokeMethodAsyncReachesTheOtherTenantsApp()
    {
        var echo = await _orders.InvokeMethodAsync<Invoice, Echo>(HttpMethod.Post, "billing", "invoices/7", new Invoice("7", 120));

        Assert.Equal("POST", echo.Method);
        Assert.Equal("/invoices/7", echo.Path);
        Assert.Equal("orders", echo.Caller);
        Assert.Equal(new Invoice("7", 120), echo.Body);
    }

    [Fact]
    public async Task InvokeMethodAsyncIsRefusedByAccessControl()
    {
        var error = await Assert.ThrowsAsync<InvocationException>(() => _shipping.InvokeMethodAsync<Echo>(HttpMethod.Get, "billing", "invoices"));
        Assert.Equal(HttpStatusCode.Forbidden, error.Response?.StatusCode);
    }

#pragma warning restore CS0618

    [Fact]
    public async Task TheSdksInvocationHttpClientReachesTheOtherTenantsApp()
    {
        using var http = DaprClient.CreateInvokeHttpClient("billing", _runtime.HttpAddress.ToString().TrimEnd('/'), "orders-token");
        var echo = await System.Net.Http.Json.HttpClientJsonExtensions.GetFromJsonAsync<Echo>(http, "/invoices?page=2");

        Assert.Equal("GET", echo!.Method);
        Assert.Equal("/invoices", echo.Path);
        Assert.Equal("?page=2", echo.Query);
        Assert.Equal("orders", echo.Caller);
    }

    [Fact]
    public async Task GrpcInvokeServiceCallsAnHttpApp()
    {
        using var channel = GrpcChannel.ForAddress(_runtime.GrpcAddress);
        var client = new Autogen.Dapr.DaprClient(channel);
        var headers = new Metadata { { "dapr-api-token", "orders-token" } };

        var response = await client.InvokeServiceAsync(new Autogen.InvokeServiceRequest
        {
            Id = "billing",
            Message = new Autogen.InvokeRequest
            {
                Method = "invoices/9",
                Data = new Google.Protobuf.WellKnownTypes.Any { Value = ByteString.CopyFromUtf8("""{"Id":"9","Total":3}""") },
                ContentType = "application/json",
                HttpExtension = new Autogen.HTTPExtension { Verb = Autogen.HTTPExtension.Types.Verb.Put, Querystring = "draft=true" },
            },
        }, headers);

        Assert.StartsWith("application/json", response.ContentType);
        var echo = System.Text.Json.JsonSerializer.Deserialize<Echo>(response.Data.Value.ToStringUtf8(), new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web))!;
        Assert.Equal("PUT", echo.Method);
        Assert.Equal("/invoices/9", echo.Path);
        Assert.Equal("?draft=true", echo.Query);
        Assert.Equal("orders", echo.Caller);
        Assert.Equal(new Invoice("9", 3), echo.Body);
    }

    [Fact]
    public async Task GrpcInvokeServiceMapsAppAndAccessErrorsToStatuses()
    {
        using var channel = GrpcChannel.ForAddress(_runtime.GrpcAddress);
        var client = new Autogen.Dapr.DaprClient(channel);
        Autogen.InvokeServiceRequest Request(string method) => new() { Id = "billing", Message = new Autogen.InvokeRequest { Method = method } };

        var missing = await Assert.ThrowsAsync<RpcException>(() => client.InvokeServiceAsync(Request("missing"), new Metadata { { "dapr-api-token", "orders-token" } }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);

        var denied = await Assert.ThrowsAsync<RpcException>(() => client.InvokeServiceAsync(Request("invoices"), new Metadata { { "dapr-api-token", "shipping-token" } }).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);

        var anonymous = await Assert.ThrowsAsync<RpcException>(() => client.InvokeServiceAsync(Request("invoices")).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, anonymous.StatusCode);
    }
}
