using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using SharedRuntime.Tests.Kubernetes;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.Kubernetes;

/// <summary>
/// Namespaces are the trust boundary in Kubernetes mode, as in Dapr: a Tenant's app-id is unique only in its
/// namespace, resources apply only to Tenants of their own namespace, invocation by app-id stays in the caller's
/// namespace and <c>app-id.namespace</c> reaches another under the target's access control. Operators' ceilings
/// (TenantLimitPolicy) clamp Tenant limits, and refused or clamped Tenants get an Event.
/// </summary>
[Collection(SharedRuntime.FunctionalTests.Lifecycle.ProcessTestsCollection.Name)]
public sealed class NamespaceIsolationTests
{
    private static readonly TimeSpan Promptly = TimeSpan.FromSeconds(5);

    private static string Tenant(string ns, string appId, string token, string extra = "") => $$$"""
        {"apiVersion":"sharedruntime.io/v1alpha1","kind":"Tenant","metadata":{"name":"{{{appId}}}","namespace":"{{{ns}}}"},
         "spec":{"appId":"{{{appId}}}","apiToken":{"value":"{{{token}}}"}{{{extra}}}}}
        """;

    private static string Component(string ns, string name, string type, string metadata = "[]", string scopes = "[]") => $$$"""
        {"apiVersion":"dapr.io/v1alpha1","kind":"Component","metadata":{"name":"{{{name}}}","namespace":"{{{ns}}}"},
         "spec":{"type":"{{{type}}}","version":"v1","metadata":{{{metadata}}}},"scopes":{{{scopes}}}}
        """;

    [Fact]
    public async Task TheSameAppIdInTwoNamespacesIsTwoTenantsWithTheirOwnKeysOnOneSharedStore()
    {
        var folder = Directory.CreateTempSubdirectory("sr-ns-");
        try
        {
            var file = Path.Combine(folder.FullName, "shared.db");
            await using var api = await FakeKubernetesApi.StartAsync();
            foreach (var ns in new[] { "team-a", "team-b" })
            {
                api.Apply(Tenant(ns, "orders", $"{ns}-token"));
                // Both namespaces point their store at the same database: one backend, two namespaces.
                api.Apply(Component(ns, "statestore", "state.sqlite", $$"""[{"name":"connectionString","value":"{{file}}"}]"""));
            }
            await using var runtime = await TestRuntime.StartKubernetesAsync(api, o => o with { AllowedFileRoots = [folder.FullName] });
            var a = runtime.Client("team-a-token");
            var b = runtime.Client("team-b-token");

            await StatusAsync(await a.PostAsync("/v1.0/state/statestore", Json("""[{"key":"order-1","value":"from a"}]""")), HttpStatusCode.NoContent);
            await StatusAsync(await b.PostAsync("/v1.0/state/statestore", Json("""[{"key":"order-1","value":"from b"}]""")), HttpStatusCode.NoContent);
            Assert.Equal("\"from a\"", await a.GetStringAsync("/v1.0/state/statestore/order-1"));
            Assert.Equal("\"from b\"", await b.GetStringAsync("/v1.0/state/statestore/order-1"));

            var tenants = runtime.Configuration.Current.Tenants;
            Assert.Equal("team-a.orders||", tenants["orders.team-a"].StatePrefix);
            Assert.Equal("team-b.orders||", tenants["orders.team-b"].StatePrefix);

            // Each sees its own app-id and namespace in the metadata API.
            using var metadata = JsonDocument.Parse(await a.GetStringAsync("/v1.0/metadata"));
            Assert.Equal("orders", metadata.RootElement.GetProperty("id").GetString());
            Assert.Equal("team-a", metadata.RootElement.GetProperty("namespace").GetString());

            // Deleting one leaves the other served.
            api.Delete("sharedruntime.io/v1alpha1", "Tenant", "team-b", "orders");
            await Eventually.TrueAsync(async () => (await b.GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.Unauthorized, Promptly, "team-b's orders removed");
            Assert.Equal("\"from a\"", await a.GetStringAsync("/v1.0/state/statestore/order-1"));
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task AResourceOfEveryKindInAnotherNamespaceHasNoEffect()
    {
        var evil = 0;
        await using var app = await TestApp.StartAsync(context =>
        {
            if (context.Request.Path.StartsWithSegments("/evil"))
            {
                Interlocked.Increment(ref evil);
            }
            context.Response.StatusCode = 200;
            return context.Response.WriteAsync($"billing answered {context.Request.Headers["dapr-caller-app-id"]}");
        });
        var endpoint = $""","appEndpoint":"{app.Address.ToString().TrimEnd('/')}" """;
        await using var api = await FakeKubernetesApi.StartAsync();

        // Namespace a: billing, its store and its Configuration, which lets only friend of namespace b call in.
        api.Apply(Tenant("a", "billing", "billing-token", endpoint + ""","config":"guard" """));
        api.Apply(Component("a", "store", "state.in-memory"));
        api.Apply("""
            {"apiVersion":"dapr.io/v1alpha1","kind":"Configuration","metadata":{"name":"guard","namespace":"a"},
             "spec":{"accessControl":{"defaultAction":"deny","policies":[{"appId":"friend","namespace":"b","defaultAction":"allow"}]}}}
            """);

        // Namespace b: one of each kind, all aimed at billing.
        api.Apply(Tenant("b", "mallory", "mallory-token"));
        api.Apply(Tenant("b", "friend", "friend-token"));
        api.Apply(Component("b", "bstore", "state.in-memory"));
        api.Apply(Component("b", "pubsub", "pubsub.in-memory", scopes: """["billing","mallory"]"""));
        api.Apply("""
            {"apiVersion":"dapr.io/v2alpha1","kind":"Subscription","metadata":{"name":"steal","namespace":"b"},
             "spec":{"pubsubname":"pubsub","topic":"t","routes":{"default":"/evil"}},"scopes":["billing"]}
            """);
        api.Apply("""
            {"apiVersion":"dapr.io/v1alpha1","kind":"Resiliency","metadata":{"name":"slow","namespace":"b"},
             "spec":{"policies":{"timeouts":{"tiny":"1ms"}},"targets":{"components":{"store":{"outbound":{"timeout":"tiny"}}}}},"scopes":["billing"]}
            """);
        api.Apply("""
            {"apiVersion":"dapr.io/v1alpha1","kind":"Configuration","metadata":{"name":"guard","namespace":"b"},
             "spec":{"accessControl":{"defaultAction":"allow"}}}
            """);

        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        var billing = runtime.Client("billing-token");
        var mallory = runtime.Client("mallory-token");
        var friend = runtime.Client("friend-token");

        // Metadata: billing sees only namespace a's component and no subscription; mallory only namespace b's.
        Assert.Equal(["store"], await ComponentsAsync(billing));
        Assert.Equal(["bstore", "pubsub"], await ComponentsAsync(mallory));
        using (var metadata = JsonDocument.Parse(await billing.GetStringAsync("/v1.0/metadata")))
        {
            Assert.Equal(0, metadata.RootElement.GetProperty("subscriptions").GetArrayLength());
        }

        // State: namespace a's store is not mallory's, and b's Resiliency does not govern billing's calls to it.
        await ErrorAsync(await mallory.GetAsync("/v1.0/state/store/k"), HttpStatusCode.BadRequest, "ERR_STATE_STORE_NOT_FOUND");
        await StatusAsync(await billing.PostAsync("/v1.0/state/store", Json("""[{"key":"k","value":1}]""")), HttpStatusCode.NoContent);
        Assert.All(runtime.Configuration.Current.Tenants["billing.a"].Routes.All, route => Assert.Null(route.Policy));

        // Events: b's Subscription scoped to billing delivers nothing to a's billing.
        await StatusAsync(await mallory.PostAsync("/v1.0/publish/pubsub/t", Json("""{"x":1}""")), HttpStatusCode.NoContent);
        Assert.Equal(0, Volatile.Read(ref evil));

        // Invocation: a bare app-id stays in the caller's namespace; billing.a reaches a, under a's access control
        // (not under b's Configuration of the same name, which would allow everyone).
        await ErrorAsync(await mallory.GetAsync("/v1.0/invoke/billing/method/x"), HttpStatusCode.NotFound, "ERR_DIRECT_INVOKE");
        await ErrorAsync(await mallory.GetAsync("/v1.0/invoke/billing.a/method/x"), HttpStatusCode.Forbidden, "ERR_DIRECT_INVOKE");
        using var allowed = await friend.GetAsync("/v1.0/invoke/billing.a/method/x");
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal("billing answered friend", await allowed.Content.ReadAsStringAsync());

        // A Tenant of b cannot claim a's app-id for a's data: billing in b is another tenant with its own keys.
        api.Apply(Tenant("b", "billing", "impostor-token"));
        var impostor = runtime.Client("impostor-token");
        await Eventually.TrueAsync(async () => (await impostor.GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK, Promptly, "billing of b served");
        await ErrorAsync(await impostor.GetAsync("/v1.0/state/store/k"), HttpStatusCode.BadRequest, "ERR_STATE_STORE_NOT_FOUND");
        Assert.Equal("1", await billing.GetStringAsync("/v1.0/state/store/k"));
        Assert.Equal(0, Volatile.Read(ref evil));
    }

    [Fact]
    public async Task ACeilingClampsTheLimitsAndTheClampIsReportedInMetadataAndAsOneEvent()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply("""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"small","labels":{"tier":"small"}}}""");
        api.Apply("""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"big"}}""");
        api.Apply("""
            {"apiVersion":"sharedruntime.io/v1alpha1","kind":"TenantLimitPolicy","metadata":{"name":"small-teams"},
             "spec":{"namespaceSelector":{"matchLabels":{"tier":"small"}},
                     "defaults":{"maxConcurrency":8},
                     "maximum":{"requestsPerSecond":10,"maxRequestBodyBytes":1024}}}
            """);
        api.Apply(Tenant("small", "greedy", "greedy-token", ""","limits":{"requestsPerSecond":1000,"burst":5}"""));
        api.Apply(Tenant("big", "greedy", "big-token", ""","limits":{"requestsPerSecond":1000}"""));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);

        using (var metadata = JsonDocument.Parse(await runtime.Client("greedy-token").GetStringAsync("/v1.0/metadata")))
        {
            var limits = metadata.RootElement.GetProperty("limits");
            Assert.Equal(10, limits.GetProperty("requestsPerSecond").GetDouble());
            Assert.Equal(5, limits.GetProperty("burst").GetInt32());
            Assert.Equal(8, limits.GetProperty("maxConcurrency").GetInt32());
            Assert.Equal(1024, limits.GetProperty("maxRequestBodyBytes").GetInt64());
            var ceiling = limits.GetProperty("ceiling");
            Assert.Equal("small-teams", ceiling.GetProperty("policies")[0].GetString());
            Assert.Equal("requestsPerSecond 1000 > 10", Assert.Single(ceiling.GetProperty("clamped").EnumerateArray()).GetString());
        }
        // Another namespace's Tenant is not selected by the policy.
        Assert.Equal(1000, runtime.Configuration.Current.Tenants["greedy.big"].Limits.RequestsPerSecond);
        Assert.Null(runtime.Configuration.Current.Tenants["greedy.big"].Config.Ceiling);

        await Eventually.TrueAsync(() => Task.FromResult(api.CreatedEvents.Count == 1), Promptly, "clamp event");
        var clampEvent = Assert.Single(api.CreatedEvents);
        Assert.Equal("LimitsClamped", clampEvent["reason"]!.GetValue<string>());
        Assert.Equal("Tenant", clampEvent["involvedObject"]!["kind"]!.GetValue<string>());
        Assert.Equal("small", clampEvent["involvedObject"]!["namespace"]!.GetValue<string>());
        Assert.Equal("greedy", clampEvent["involvedObject"]!["name"]!.GetValue<string>());
        Assert.Contains("requestsPerSecond 1000 > 10", clampEvent["message"]!.GetValue<string>(), StringComparison.Ordinal);

        // A refused Tenant (an app-id with the namespace separator) gets its Event; unrelated reloads add none for the clamp.
        api.Apply(Tenant("big", "dotted.name", "dotted-token"));
        await Eventually.TrueAsync(() => Task.FromResult(api.CreatedEvents.Any(e => e["reason"]!.GetValue<string>() == "TenantRefused")), Promptly, "refusal event");
        var refusal = api.CreatedEvents.Single(e => e["reason"]!.GetValue<string>() == "TenantRefused");
        Assert.Equal("dotted.name", refusal["involvedObject"]!["name"]!.GetValue<string>());
        Assert.Contains("separates app-id and namespace", refusal["message"]!.GetValue<string>(), StringComparison.Ordinal);
        api.Apply(Tenant("big", "another", "another-token"));
        await Eventually.TrueAsync(async () => (await runtime.Client("another-token").GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK, Promptly, "reloaded");
        Assert.Equal(2, api.CreatedEvents.Count);

        // Raising the ceiling lifts the clamp.
        api.Apply("""
            {"apiVersion":"sharedruntime.io/v1alpha1","kind":"TenantLimitPolicy","metadata":{"name":"small-teams"},
             "spec":{"namespaceSelector":{"matchLabels":{"tier":"small"}},"maximum":{"requestsPerSecond":5000}}}
            """);
        await runtime.WaitForConfigurationAsync(s => s.Tenants["greedy.small"].Limits.RequestsPerSecond == 1000, Promptly);
    }

    private static async Task<string[]> ComponentsAsync(HttpClient client)
    {
        using var metadata = JsonDocument.Parse(await client.GetStringAsync("/v1.0/metadata"));
        return [.. metadata.RootElement.GetProperty("components").EnumerateArray().Select(c => c.GetProperty("name").GetString()!).Order(StringComparer.Ordinal)];
    }
}
