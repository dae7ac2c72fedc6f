using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Dapr.Client;
using Microsoft.AspNetCore.Http;
using SharedRuntime.Tests;
using SharedRuntime.Tests.Kubernetes;

namespace SharedRuntime.SdkTests;

/// <summary>
/// The shipped build, a native executable, driven through the Dapr SDK: what ahead-of-time compilation could break
/// without the JIT build noticing (YAML and JSON read without reflection, gRPC, the Kubernetes client). Runs when
/// <c>SHAREDRUNTIME_NATIVE_EXECUTABLE</c> names the published executable (<c>scripts/native-smoke.sh</c> publishes it
/// and sets it; <c>.ci/run</c> runs that script); skipped otherwise.
/// </summary>
public sealed class NativeExecutableTests
{
    private static readonly string? Executable = Environment.GetEnvironmentVariable("SHAREDRUNTIME_NATIVE_EXECUTABLE") is { Length: > 0 } path ? path : null;

    [SkippableFact]
    public async Task StateOnEveryEmbeddedStorePublishAndDeliveryOverHttpAndGrpc()
    {
        Skip.If(Executable is null, "SHAREDRUNTIME_NATIVE_EXECUTABLE is not set");
        var folder = Directory.CreateTempSubdirectory("sharedruntime-native-").FullName;
        var delivered = new ConcurrentQueue<string>();
        await using var subscriber = await TestApp.StartAsync(async context =>
        {
            if (context.Request.Path == "/dapr/subscribe")
            {
                await context.Response.WriteAsync("[]");
                return;
            }
            using var reader = new StreamReader(context.Request.Body);
            delivered.Enqueue(await reader.ReadToEndAsync());
        });
        await File.WriteAllTextAsync(Path.Combine(folder, "resources.yaml"),
            Resources.Component("memory", "state.in-memory") +
            Resources.Component("durable", "state.sqlite", new Dictionary<string, string> { ["connectionString"] = Path.Combine(folder, "state.db") }) +
            Resources.Component("pubsub", "pubsub.in-memory") +
            Resources.Tenant("orders", "orders-token") +
            Resources.Tenant("billing", "billing-token", appEndpoint: subscriber.Address.ToString().TrimEnd('/')) +
            """
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: invoices
            spec:
              pubsubname: pubsub
              topic: invoices
              routes:
                default: /invoices
            scopes: [billing]

            """);
        await using var runtime = await RuntimeProcess.StartExecutableReadyAsync(Executable, "--resources-path", folder, "--state-dir", Path.Combine(folder, "state"),
            "--handoff-socket", "none");
        using var http = new HttpClient { BaseAddress = runtime.HttpAddress };
        using var healthz = await http.GetAsync("/v1.0/healthz");
        Assert.Equal(HttpStatusCode.NoContent, healthz.StatusCode);

        using var orders = new DaprClientBuilder().UseHttpEndpoint(runtime.HttpAddress.ToString()).UseGrpcEndpoint(runtime.GrpcAddress.ToString())
            .UseDaprApiToken("orders-token").Build();
        foreach (var store in new[] { "memory", "durable" })
        {
            await orders.SaveStateAsync(store, "order-1", new Order(42, "native"));
            Assert.Equal(new Order(42, "native"), await orders.GetStateAsync<Order>(store, "order-1"));
            using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1.0/state/{store}/order-1");
            request.Headers.Add("dapr-api-token", "orders-token");
            using var answer = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            Assert.Contains("\"native\"", await answer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        await orders.PublishEventAsync("pubsub", "invoices", new Order(7, "invoice"));
        await Eventually.TrueAsync(() => Task.FromResult(delivered.Any(e => e.Contains("invoice", StringComparison.Ordinal))), TimeSpan.FromSeconds(10),
            "the subscriber app received the event");

        // A tenant's bad input is still its own 4xx in the native build.
        using var bad = new HttpRequestMessage(HttpMethod.Post, "/v1.0/state/memory") { Content = new StringContent("[{\"key\":", Encoding.UTF8, "application/json") };
        bad.Headers.Add("dapr-api-token", "orders-token");
        using var refused = await http.SendAsync(bad);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.False(runtime.HasExited);
    }

    [SkippableFact]
    public async Task KubernetesModeReadsTenantsAndComponentsFromTheApiServer()
    {
        Skip.If(Executable is null, "SHAREDRUNTIME_NATIVE_EXECUTABLE is not set");
        var folder = Directory.CreateTempSubdirectory("sharedruntime-native-k8s-").FullName;
        await using var api = await FakeKubernetesApi.StartAsync();
        api.Apply("""
            {"apiVersion":"sharedruntime.io/v1alpha1","kind":"Tenant","metadata":{"name":"orders","namespace":"shop"},
             "spec":{"appId":"orders","apiToken":{"value":"orders-token"}}}
            """);
        api.Apply("""
            {"apiVersion":"dapr.io/v1alpha1","kind":"Component","metadata":{"name":"store","namespace":"shop"},
             "spec":{"type":"state.in-memory","version":"v1","metadata":[]}}
            """);
        var kubeconfig = Path.Combine(folder, "kubeconfig");
        await File.WriteAllTextAsync(kubeconfig, api.Kubeconfig());
        await using var runtime = await RuntimeProcess.StartExecutableReadyAsync(Executable, "--mode", "kubernetes", "--kubeconfig", kubeconfig,
            "--dapr-listen-addresses", "127.0.0.1", "--state-dir", Path.Combine(folder, "state"), "--handoff-socket", "none");

        using var orders = new DaprClientBuilder().UseHttpEndpoint(runtime.HttpAddress.ToString()).UseGrpcEndpoint(runtime.GrpcAddress.ToString())
            .UseDaprApiToken("orders-token").Build();
        await orders.SaveStateAsync("store", "k", "from the cluster");
        Assert.Equal("from the cluster", await orders.GetStateAsync<string>("store", "k"));
        var metadata = await orders.GetMetadataAsync();
        Assert.Equal("orders", metadata.Id);
    }

    /// <summary>
    /// A spell without free file descriptors stops no listener for good: the connections that came meanwhile wait in the
    /// listen queue, the runtime says why, and they are answered once descriptors are free again. (The client-connection
    /// bound keeps clients from bringing the process there; a node's other use of descriptors still can.) Against the
    /// native build: the JIT build itself needs descriptors to compile code and may fail there on its own.
    /// </summary>
    [SkippableFact]
    public async Task ConnectionsThatCameWhileNoDescriptorWasFreeAreAnsweredOnceOneIs()
    {
        Skip.If(Executable is null, "SHAREDRUNTIME_NATIVE_EXECUTABLE is not set");
        Skip.IfNot(File.Exists("/usr/bin/prlimit"), "prlimit(1) changes the limit of a running process");
        var folder = Directory.CreateTempSubdirectory("sharedruntime-native-fd-").FullName;
        await File.WriteAllTextAsync(Path.Combine(folder, "resources.yaml"), Resources.Tenant("fd-app", "fd-token"));
        await using var runtime = await RuntimeProcess.StartExecutableReadyAsync(Executable, "--resources-path", folder, "--state-dir", Path.Combine(folder, "state"),
            "--handoff-socket", "none", "--reuse-port", "false");
        var line = File.ReadAllLines($"/proc/{runtime.Id}/limits").Single(l => l.StartsWith("Max open files", StringComparison.Ordinal));
        var soft = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];

        // No descriptor above the standard streams: every accept fails with EMFILE until the limit is raised again.
        await PrlimitAsync(runtime.Id, "3");
        var clients = new List<Socket>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                clients.Add(client);
                await client.ConnectAsync(new IPEndPoint(IPAddress.Loopback, runtime.HttpPort)).WaitAsync(TimeSpan.FromSeconds(20));
                await client.SendAsync("GET /v1.0/healthz HTTP/1.1\r\nHost: runtime\r\n\r\n"u8.ToArray()).WaitAsync(TimeSpan.FromSeconds(20));
            }
            await runtime.WaitForLogAsync("accepting a connection failed", TimeSpan.FromSeconds(20));
            Assert.False(runtime.HasExited);

            await PrlimitAsync(runtime.Id, soft);
            foreach (var client in clients)
            {
                var head = new byte[64];
                var read = await client.ReceiveAsync(head.AsMemory()).AsTask().WaitAsync(TimeSpan.FromSeconds(20));
                Assert.StartsWith("HTTP/1.1 204", Encoding.ASCII.GetString(head, 0, read));
            }
            await runtime.WaitForLogAsync("accepting connections again", TimeSpan.FromSeconds(20));
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }
    }

    /// <summary>Sets the soft limit on open descriptors of process <paramref name="pid"/>; the hard limit stays.</summary>
    private static async Task PrlimitAsync(int pid, string soft)
    {
        using var prlimit = Process.Start(new ProcessStartInfo("/usr/bin/prlimit", ["--pid", $"{pid}", $"--nofile={soft}:"])
        {
            UseShellExecute = false,
            RedirectStandardError = true,
        })!;
        var error = await prlimit.StandardError.ReadToEndAsync();
        await prlimit.WaitForExitAsync();
        Assert.True(prlimit.ExitCode == 0, $"prlimit failed: {error}");
    }

    private sealed record Order(int Id, string Note);
}
