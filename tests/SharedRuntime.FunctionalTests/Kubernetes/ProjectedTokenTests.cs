using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using SharedRuntime.Tests.Kubernetes;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;
using static SharedRuntime.FunctionalTests.Kubernetes.KubernetesObjects;
using static SharedRuntime.FunctionalTests.Kubernetes.PodBoundTokenTests;

namespace SharedRuntime.FunctionalTests.Kubernetes;

/// <summary>
/// An app may send a projected ServiceAccount token (audience sharedruntime.io) as its dapr-api-token: in Kubernetes
/// mode the runtime reviews it with the API server (TokenReview) and serves it as the one Tenant of the token's
/// namespace whose spec.identity names its service account. Verdicts are cached; made-up tokens cannot make the runtime
/// hammer the API server; a tenant's own token is unaffected throughout.
/// </summary>
[Collection(SharedRuntime.FunctionalTests.Lifecycle.ProcessTestsCollection.Name)]
public sealed class ProjectedTokenTests
{
    private static readonly string[] OurAudience = ["sharedruntime.io"];

    private static DateTimeOffset InAnHour => DateTimeOffset.UtcNow.AddHours(1);

    [Fact]
    public async Task AProjectedTokenReachesTheTenantNamingItsServiceAccountAndItsVerdictIsCached()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(BoundTenant("orders", "orders-token", """{"serviceAccountName":"orders"}""", "shop"));
        api.Apply(Tenant("free", "free-token", @namespace: "shop"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        var token = api.IssueServiceAccountToken("shop", "orders", OurAudience, InAnHour);

        for (var i = 0; i < 20; i++)
        {
            var response = await runtime.Client(token).GetAsync("/v1.0/metadata");
            await StatusAsync(response, HttpStatusCode.OK);
            Assert.Contains("\"id\":\"orders\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        Assert.Equal(1, api.TokenReviews);
        // The tenant's own token is not reviewed and still works.
        await StatusAsync(await runtime.Client("free-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        Assert.Equal(1, api.TokenReviews);
        // What was asked: the token, for our audience only.
        Assert.Contains(api.Requests, r => r == "POST /apis/authentication.k8s.io/v1/tokenreviews auth");
    }

    [Fact]
    public async Task TokensThatNameNoOneTenantAreRefusedWithADaprError()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(BoundTenant("orders", "orders-token", """{"serviceAccountName":"orders"}""", "shop"));
        api.Apply(BoundTenant("left", "left-token", """{"serviceAccountName":"shared"}""", "shop"));
        api.Apply(BoundTenant("right", "right-token", """{"serviceAccountName":"shared"}""", "shop"));
        api.Apply(Tenant("free", "free-token", @namespace: "shop"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);

        var refused = new Dictionary<string, string>
        {
            ["another audience"] = api.IssueServiceAccountToken("shop", "orders", ["https://kubernetes.default.svc"], InAnHour),
            ["unknown to the API server"] = FakeKubernetesApi.MakeJwt(new JsonObject { ["aud"] = new JsonArray("sharedruntime.io"), ["sub"] = "system:serviceaccount:shop:orders", ["exp"] = InAnHour.ToUnixTimeSeconds() }),
            ["expired"] = api.IssueServiceAccountToken("shop", "orders", OurAudience, DateTimeOffset.UtcNow.AddMinutes(-1)),
            ["a service account no Tenant names"] = api.IssueServiceAccountToken("shop", "nobody", OurAudience, InAnHour),
            ["a service account two Tenants name"] = api.IssueServiceAccountToken("shop", "shared", OurAudience, InAnHour),
            ["the same service account name in another namespace"] = api.IssueServiceAccountToken("elsewhere", "orders", OurAudience, InAnHour),
            ["not a JWT payload"] = "eyJhbGciOiJSUzI1NiJ9.bm90LWpzb24.c2ln",
        };
        foreach (var (why, token) in refused)
        {
            for (var i = 0; i < 3; i++)
            {
                var body = await ErrorAsync(await runtime.Client(token).GetAsync("/v1.0/metadata"), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
                Assert.True(!body.Contains("\"orders\"", StringComparison.Ordinal), why);
            }
            await StatusAsync(await runtime.Client("free-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        }
        // Refusals are cached too: at most one review per made-up or refused token (the expired one and the one that
        // is not a JWT are refused without asking).
        Assert.InRange(api.TokenReviews, 1, refused.Count - 2);
    }

    [Fact]
    public async Task ATenantThatAlsoSelectsItsPodsTakesItsProjectedTokenOnlyFromThem()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(BoundTenant("billing", "billing-token", """{"serviceAccountName":"billing","podSelector":{"matchLabels":{"app":"billing"}}}""", "shop"));
        api.Apply(Pod("billing-1", "shop", "127.0.0.2", "billing", """{"app":"billing"}"""));
        api.Apply(Pod("other-1", "shop", "127.0.0.3", "billing", """{"app":"other"}"""));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api, o => o with { NodeName = "node-a" });
        var token = api.IssueServiceAccountToken("shop", "billing", OurAudience, InAnHour);

        await StatusAsync(await From(runtime, "127.0.0.2", token).GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        foreach (var source in new[] { "127.0.0.1", "127.0.0.3", "127.0.0.9" })
        {
            await ErrorAsync(await From(runtime, source, token).GetAsync("/v1.0/metadata"), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
        }
        Assert.Equal(1, api.TokenReviews);
    }

    [Fact]
    public async Task AFloodOfMadeUpTokensIsReviewedAtABoundedRateAndStarvesNoOne()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(BoundTenant("orders", "orders-token", """{"serviceAccountName":"orders"}""", "shop"));
        api.Apply(Tenant("free", "free-token", @namespace: "shop"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        var valid = api.IssueServiceAccountToken("shop", "orders", OurAudience, InAnHour);
        using var flooder = From(runtime, "127.0.0.7", "unused");

        const int Flood = 300;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < Flood; i++)
        {
            var madeUp = FakeKubernetesApi.MakeJwt(new JsonObject { ["aud"] = new JsonArray("sharedruntime.io"), ["sub"] = $"system:serviceaccount:shop:x{i}", ["exp"] = InAnHour.ToUnixTimeSeconds() });
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1.0/metadata");
            request.Headers.Add("dapr-api-token", madeUp);
            await ErrorAsync(await flooder.SendAsync(request), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
            if (i % 50 == 0)
            {
                await StatusAsync(await runtime.Client("free-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
                await StatusAsync(await From(runtime, "127.0.0.8", valid).GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
            }
        }
        var seconds = Math.Ceiling(clock.Elapsed.TotalSeconds);
        // The flood's source gets 10 reviews per second; the valid token was reviewed once, from another address.
        var reviews = api.TokenReviews;
        Assert.InRange(reviews, 2, 1 + (10 * (seconds + 1)));
        Assert.True(reviews < Flood / 2, $"{reviews} reviews for {Flood} made-up tokens in {seconds} s");
        await StatusAsync(await runtime.Client("free-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        await StatusAsync(await From(runtime, "127.0.0.8", valid).GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
    }

    [Fact]
    public async Task StandaloneModeNeverReviewsATokenEvenWithAKubeconfig()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        var token = api.IssueServiceAccountToken("default", "orders", OurAudience, InAnHour);
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string>
        {
            ["kubeconfig"] = api.Kubeconfig(),
            ["resources.yaml"] = """
                apiVersion: sharedruntime.io/v1alpha1
                kind: Tenant
                metadata:
                  name: orders
                spec:
                  appId: orders
                  apiToken:
                    value: "orders-token"
                """,
        }, o => o with { Kubeconfig = Path.Combine(o.ResourcesPaths[0], "kubeconfig") });

        await ErrorAsync(await runtime.Client(token).GetAsync("/v1.0/metadata"), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
        await StatusAsync(await runtime.Client("orders-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        Assert.Equal(0, api.TokenReviews);
    }
}
