using System.Net;
using System.Net.Sockets;
using SharedRuntime.Tests.Kubernetes;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;
using static SharedRuntime.FunctionalTests.Kubernetes.KubernetesObjects;

namespace SharedRuntime.FunctionalTests.Kubernetes;

/// <summary>
/// A Tenant that binds its token to its pods (spec.identity) is served only from the address of a running pod of its
/// namespace on the runtime's node that matches the binding; the runtime watches that node's Pods only. Loopback
/// addresses stand in for pod IPs: the client's socket is bound to 127.0.0.x before it connects.
/// </summary>
[Collection(SharedRuntime.FunctionalTests.Lifecycle.ProcessTestsCollection.Name)]
public sealed class PodBoundTokenTests
{
    private static readonly TimeSpan Promptly = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task ABoundTokenIsServedOnlyFromItsPodsAndAnUnboundTenantIsUnaffected()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(BoundTenant("orders", "orders-token", """{"serviceAccountName":"orders"}""", "shop"));
        api.Apply(BoundTenant("billing", "billing-token", """{"podSelector":{"matchLabels":{"app":"billing"}}}""", "shop"));
        api.Apply(Tenant("free", "free-token", @namespace: "shop"));
        api.Apply(Pod("orders-1", "shop", "127.0.0.2", "orders", """{"app":"orders"}"""));
        api.Apply(Pod("billing-1", "shop", "127.0.0.3", "billing", """{"app":"billing"}"""));
        // The same service account in another namespace, and a pod of orders on another node.
        api.Apply(Pod("impostor", "elsewhere", "127.0.0.4", "orders", """{"app":"billing"}"""));
        api.Apply(Pod("orders-2", "shop", "127.0.0.5", "orders", """{"app":"orders"}""", node: "node-b"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api, o => o with { NodeName = "node-a" });

        await StatusAsync(await From(runtime, "127.0.0.2", "orders-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        await StatusAsync(await From(runtime, "127.0.0.3", "billing-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        foreach (var (source, token) in new[]
                 {
                     ("127.0.0.1", "orders-token"), ("127.0.0.3", "orders-token"), ("127.0.0.4", "orders-token"), ("127.0.0.5", "orders-token"),
                     ("127.0.0.2", "billing-token"), ("127.0.0.4", "billing-token"), ("127.0.0.6", "billing-token"),
                 })
        {
            var body = await ErrorAsync(await From(runtime, source, token).GetAsync("/v1.0/metadata"), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
            Assert.DoesNotContain("orders", body, StringComparison.Ordinal);
        }
        // A tenant with no binding is served from anywhere.
        foreach (var source in new[] { "127.0.0.1", "127.0.0.2", "127.0.0.9" })
        {
            await StatusAsync(await From(runtime, source, "free-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        }
        // Only this node's Pods were asked for.
        Assert.All(api.Requests.Where(r => r.StartsWith("GET /api/v1/pods", StringComparison.Ordinal)),
            r => Assert.Contains("fieldSelector=spec.nodeName%3Dnode-a", r, StringComparison.Ordinal));

        // The pod goes away: its address no longer carries the token.
        api.Delete("v1", "Pod", "shop", "orders-1");
        await Eventually.TrueAsync(async () => (await From(runtime, "127.0.0.2", "orders-token").GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.Unauthorized,
            Promptly, "the deleted pod's address is refused");
    }

    [Fact]
    public async Task WithoutANodeNameABoundTokenIsRefusedEverywhere()
    {
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply(BoundTenant("orders", "orders-token", """{"serviceAccountName":"orders"}""", "shop"));
        api.Apply(Pod("orders-1", "shop", "127.0.0.2", "orders", "{}"));
        await using var runtime = await TestRuntime.StartKubernetesAsync(api);
        await ErrorAsync(await From(runtime, "127.0.0.2", "orders-token").GetAsync("/v1.0/metadata"), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
        Assert.DoesNotContain(api.Requests, r => r.Contains("/pods", StringComparison.Ordinal));
    }

    internal static string BoundTenant(string name, string token, string identity, string @namespace) => $$$"""
        {"apiVersion":"sharedruntime.io/v1alpha1","kind":"Tenant","metadata":{"name":"{{{name}}}","namespace":"{{{@namespace}}}"},
         "spec":{"appId":"{{{name}}}","apiToken":{"value":"{{{token}}}"},"identity":{{{identity}}}}}
        """;

    internal static string Pod(string name, string @namespace, string ip, string serviceAccount, string labels, string node = "node-a") => $$$"""
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"{{{name}}}","namespace":"{{{@namespace}}}","labels":{{{labels}}}},
         "spec":{"nodeName":"{{{node}}}","serviceAccountName":"{{{serviceAccount}}}","containers":[{"name":"app","image":"app"}]},
         "status":{"phase":"Running","podIP":"{{{ip}}}","podIPs":[{"ip":"{{{ip}}}"}]}}
        """;

    /// <summary>A client of the Dapr HTTP API whose connections come from <paramref name="source"/>.</summary>
    internal static HttpClient From(TestRuntime runtime, string source, string token)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    socket.Bind(new IPEndPoint(IPAddress.Parse(source), 0));
                    await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        var client = new HttpClient(handler) { BaseAddress = runtime.HttpAddress, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Add("dapr-api-token", token);
        return client;
    }
}
