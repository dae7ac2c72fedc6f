using System.Net;
using Microsoft.AspNetCore.Http;
using SharedRuntime.Tests.Kubernetes;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;
using static SharedRuntime.FunctionalTests.Kubernetes.KubernetesObjects;

namespace SharedRuntime.FunctionalTests.Kubernetes;

/// <summary>
/// HTTPEndpoints read from the cluster: a header's value comes from a Secret of the endpoint's own namespace, and
/// only the Tenants of that namespace (and its scopes) can invoke it.
/// </summary>
[Collection(SharedRuntime.FunctionalTests.Lifecycle.ProcessTestsCollection.Name)]
public sealed class HttpEndpointTests
{
    [Fact]
    public async Task AnEndpointIsInvokedWithItsSecretHeaderByItsNamespaceOnly()
    {
        await using var service = await TestApp.StartAsync(static context => context.Response.WriteAsync($"key={context.Request.Headers["X-Api-Key"]}"));
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(Secret("weather-key", "key", "from-secret", "shop"));
        api.Apply($$$"""
            {"apiVersion":"dapr.io/v1alpha1","kind":"HTTPEndpoint","metadata":{"name":"weather","namespace":"shop"},
             "spec":{"baseUrl":"{{{service.Address.ToString().TrimEnd('/')}}}","headers":[{"name":"X-Api-Key","secretKeyRef":{"name":"weather-key","key":"key"}}]}}
            """);
        api.Apply(Tenant("orders", "orders-token", @namespace: "shop"));
        api.Apply(Tenant("orders", "other-orders-token", @namespace: "other"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api, o => o with { AllowedInvokeHosts = ["127.0.0.1"] });

        using var allowed = await runtime.Client("orders-token").GetAsync("/v1.0/invoke/weather/method/today");
        await StatusAsync(allowed, HttpStatusCode.OK);
        Assert.Equal("key=from-secret", await allowed.Content.ReadAsStringAsync());

        using var otherNamespace = await runtime.Client("other-orders-token").GetAsync("/v1.0/invoke/weather/method/today");
        Assert.Equal(HttpStatusCode.NotFound, otherNamespace.StatusCode);
        Assert.Contains("ERR_DIRECT_INVOKE", await otherNamespace.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
