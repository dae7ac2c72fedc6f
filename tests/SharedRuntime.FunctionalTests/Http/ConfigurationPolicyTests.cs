using System.Net;
using Grpc.Core;
using Grpc.Net.Client;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>
/// A tenant's Dapr Configuration applies to its own calls as Dapr applies it: <c>api.allowed</c>/<c>api.denied</c> and
/// <c>secrets.scopes</c>, over HTTP and gRPC, and never to another tenant.
/// </summary>
public sealed class ConfigurationPolicyTests : IAsyncLifetime
{
    private readonly string _secretsFile = Path.Combine(Path.GetTempPath(), $"policy-secrets-{Guid.NewGuid():N}.json");
    private TestRuntime _runtime = null!;
    private GrpcChannel _channel = null!;

    public async Task InitializeAsync()
    {
        await File.WriteAllTextAsync(_secretsFile, """{"db-password":"p1","api-key":"k1","other":"o1"}""");
        _runtime = await TestRuntime.StartAsync(
            Tenant("orders", "orders-token", "orders-config") +
            Tenant("billing", "billing-token", "billing-config") +
            Tenant("audit", "audit-token", config: null) +
            """
            apiVersion: dapr.io/v1alpha1
            kind: Configuration
            metadata:
              name: orders-config
            spec:
              api:
                denied:
                  - name: state
                    version: v1.0
                    protocol: http
                  - name: state
                    version: v1
                    protocol: grpc
              secrets:
                scopes:
                  - storeName: vault
                    defaultAccess: allow
                    deniedSecrets: ["db-password"]
            ---
            apiVersion: dapr.io/v1alpha1
            kind: Configuration
            metadata:
              name: billing-config
            spec:
              api:
                allowed:
                  - name: state
                    version: v1.0
                    protocol: http
                  - name: state
                    version: v1
                    protocol: grpc
                  - name: secrets
                    version: v1
                    protocol: grpc
              secrets:
                scopes:
                  - storeName: vault
                    defaultAccess: deny
                    allowedSecrets: ["db-password"]
            ---

            """ +
            Resources.Component("store", "state.in-memory") +
            Resources.Component("events", "pubsub.in-memory") +
            Resources.Component("vault", "secretstores.local.file", new Dictionary<string, string> { ["secretsFile"] = _secretsFile }));
        _channel = GrpcChannel.ForAddress(_runtime.GrpcAddress);
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        await _runtime.DisposeAsync();
        File.Delete(_secretsFile);
    }

    private static string Tenant(string appId, string token, string? config) => $"""
        apiVersion: sharedruntime.io/v1alpha1
        kind: Tenant
        metadata:
          name: {appId}
        spec:
          appId: {appId}
          apiToken:
            value: "{token}"
        {(config is null ? "" : $"  config: {config}\n")}---

        """;

    private Autogen.Dapr.DaprClient Grpc => new(_channel);

    private static Metadata Token(string token) => new() { { "dapr-api-token", token } };

    private static DateTime Deadline => DateTime.UtcNow.AddSeconds(30);

    [Fact]
    public async Task A_denied_http_api_is_not_found_and_another_tenant_that_allows_it_is_unaffected()
    {
        var orders = _runtime.Client("orders-token");
        var message = await ErrorAsync(await orders.GetAsync("/v1.0/state/store/k"), HttpStatusCode.NotFound, "ERR_API_NOT_ALLOWED");
        Assert.Contains("orders", message);
        await ErrorAsync(await orders.PostAsync("/v1.0/state/store", Json("""[{"key":"k","value":1}]""")), HttpStatusCode.NotFound, "ERR_API_NOT_ALLOWED");
        // The router ignores case; the rule does not.
        await ErrorAsync(await orders.GetAsync("/V1.0/STATE/store/k"), HttpStatusCode.NotFound, "ERR_API_NOT_ALLOWED");
        // What the deny list does not name stays open.
        await StatusAsync(await orders.PostAsync("/v1.0/publish/events/t", Json("{}")), HttpStatusCode.NoContent);
        await StatusAsync(await orders.GetAsync("/v1.0/metadata"), HttpStatusCode.OK);

        // billing allows state and nothing else over HTTP.
        var billing = _runtime.Client("billing-token");
        await StatusAsync(await billing.PostAsync("/v1.0/state/store", Json("""[{"key":"k","value":1}]""")), HttpStatusCode.NoContent);
        await StatusAsync(await billing.GetAsync("/v1.0/state/store/k"), HttpStatusCode.OK);
        await ErrorAsync(await billing.PostAsync("/v1.0/publish/events/t", Json("{}")), HttpStatusCode.NotFound, "ERR_API_NOT_ALLOWED");
        await ErrorAsync(await billing.GetAsync("/v1.0/metadata"), HttpStatusCode.NotFound, "ERR_API_NOT_ALLOWED");
        await ErrorAsync(await billing.GetAsync("/v1.0/secrets/vault/db-password"), HttpStatusCode.NotFound, "ERR_API_NOT_ALLOWED");
        // The invoke route, recognised before the router, is the same API to the rules: refused for billing, open for orders.
        await ErrorAsync(await billing.GetAsync("/v1.0/invoke/audit/method/x"), HttpStatusCode.NotFound, "ERR_API_NOT_ALLOWED");
        await ErrorAsync(await orders.GetAsync("/v1.0/invoke/audit/method/x"), HttpStatusCode.NotFound, "ERR_DIRECT_INVOKE");

        // A tenant without a Configuration is open.
        await StatusAsync(await _runtime.Client("audit-token").GetAsync("/v1.0/state/store/k"), HttpStatusCode.NoContent);
        // Health stays open to everyone, as in Dapr.
        await StatusAsync(await billing.GetAsync("/v1.0/healthz"), HttpStatusCode.NoContent);
    }

    [Fact]
    public async Task A_denied_grpc_api_is_unimplemented_and_another_tenant_that_allows_it_is_unaffected()
    {
        var refused = await Assert.ThrowsAsync<RpcException>(async () => await Grpc.GetStateAsync(
            new Autogen.GetStateRequest { StoreName = "store", Key = "k" }, Token("orders-token"), Deadline));
        Assert.Equal(StatusCode.Unimplemented, refused.StatusCode);
        Assert.Contains("requested endpoint is not available", refused.Status.Detail);
        refused = await Assert.ThrowsAsync<RpcException>(async () => await Grpc.SaveStateAsync(
            new Autogen.SaveStateRequest { StoreName = "store", States = { new Dapr.Client.Autogen.Grpc.v1.StateItem { Key = "k" } } }, Token("orders-token"), Deadline));
        Assert.Equal(StatusCode.Unimplemented, refused.StatusCode);
        // Not denied for orders.
        await Grpc.PublishEventAsync(new Autogen.PublishEventRequest { PubsubName = "events", Topic = "t", Data = Google.Protobuf.ByteString.CopyFromUtf8("{}") },
            Token("orders-token"), Deadline);

        // billing's allow list has state and secrets over gRPC, not publish.
        await Grpc.SaveStateAsync(new Autogen.SaveStateRequest { StoreName = "store", States = { new Dapr.Client.Autogen.Grpc.v1.StateItem { Key = "g", Value = Google.Protobuf.ByteString.CopyFromUtf8("1") } } },
            Token("billing-token"), Deadline);
        var got = await Grpc.GetStateAsync(new Autogen.GetStateRequest { StoreName = "store", Key = "g" }, Token("billing-token"), Deadline);
        Assert.Equal("1", got.Data.ToStringUtf8());
        refused = await Assert.ThrowsAsync<RpcException>(async () => await Grpc.PublishEventAsync(
            new Autogen.PublishEventRequest { PubsubName = "events", Topic = "t", Data = Google.Protobuf.ByteString.CopyFromUtf8("{}") }, Token("billing-token"), Deadline));
        Assert.Equal(StatusCode.Unimplemented, refused.StatusCode);
        refused = await Assert.ThrowsAsync<RpcException>(async () => await Grpc.GetMetadataAsync(new Autogen.GetMetadataRequest(), Token("billing-token"), Deadline));
        Assert.Equal(StatusCode.Unimplemented, refused.StatusCode);

        // A tenant without a Configuration is open over gRPC too.
        await Grpc.GetStateAsync(new Autogen.GetStateRequest { StoreName = "store", Key = "k" }, Token("audit-token"), Deadline);
    }

    [Fact]
    public async Task A_secret_its_scope_denies_is_forbidden_over_http_and_grpc_and_another_tenants_scope_is_its_own()
    {
        var orders = _runtime.Client("orders-token");
        var message = await ErrorAsync(await orders.GetAsync("/v1.0/secrets/vault/db-password"), HttpStatusCode.Forbidden, "ERR_PERMISSION_DENIED");
        Assert.Contains("access denied by policy", message);
        Assert.Equal("""{"api-key":"k1"}""", await orders.GetStringAsync("/v1.0/secrets/vault/api-key"));
        // Bulk leaves out what the scope denies.
        var bulk = await orders.GetStringAsync("/v1.0/secrets/vault/bulk");
        Assert.Contains("api-key", bulk);
        Assert.Contains("other", bulk);
        Assert.DoesNotContain("db-password", bulk);

        var refused = await Assert.ThrowsAsync<RpcException>(async () => await Grpc.GetSecretAsync(
            new Autogen.GetSecretRequest { StoreName = "vault", Key = "db-password" }, Token("orders-token"), Deadline));
        Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
        Assert.Equal("ERR_PERMISSION_DENIED", refused.Trailers.GetValue("dapr-error-code"));

        // billing's scope is the other way round: only db-password.
        var secret = await Grpc.GetSecretAsync(new Autogen.GetSecretRequest { StoreName = "vault", Key = "db-password" }, Token("billing-token"), Deadline);
        Assert.Equal("p1", secret.Data["db-password"]);
        refused = await Assert.ThrowsAsync<RpcException>(async () => await Grpc.GetSecretAsync(
            new Autogen.GetSecretRequest { StoreName = "vault", Key = "api-key" }, Token("billing-token"), Deadline));
        Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
        var billingBulk = await Grpc.GetBulkSecretAsync(new Autogen.GetBulkSecretRequest { StoreName = "vault" }, Token("billing-token"), Deadline);
        Assert.Equal(["db-password"], billingBulk.Data.Keys);

        // A tenant without scopes reads everything.
        Assert.Equal("""{"db-password":"p1"}""", await _runtime.Client("audit-token").GetStringAsync("/v1.0/secrets/vault/db-password"));
    }

    [Fact]
    public async Task The_rules_are_compiled_once_with_the_snapshot_not_per_request()
    {
        var before = _runtime.Configuration.Current.Tenants["orders"].Policy;
        for (var i = 0; i < 20; i++)
        {
            await _runtime.Client("orders-token").GetAsync("/v1.0/state/store/k");
        }
        Assert.Same(before, _runtime.Configuration.Current.Tenants["orders"].Policy);
        Assert.NotNull(before.Api);
        Assert.NotNull(before.Secrets);
        Assert.Null(_runtime.Configuration.Current.Tenants["audit"].Policy.Api);
    }
}
