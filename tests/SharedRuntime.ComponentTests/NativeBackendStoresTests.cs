using System.Collections.Concurrent;
using System.Net;
using Dapr.Client;
using Microsoft.AspNetCore.Http;
using SharedRuntime.ComponentTests.Servers;
using SharedRuntime.Tests;

namespace SharedRuntime.ComponentTests;

/// <summary>
/// The shipped native executable against real Redis, PostgreSQL and NATS servers, driven through the Dapr SDK: what
/// trimming and ahead-of-time compilation could break in the backend clients (their connection setup, scripts, SQL and
/// JetStream consumers). Runs when <c>SHAREDRUNTIME_NATIVE_EXECUTABLE</c> names the published executable
/// (<c>scripts/native-smoke.sh</c> sets it); skipped otherwise.
/// </summary>
public sealed class NativeBackendStoresTests(RedisServer redis, PostgreSqlServer postgres, NatsServer nats)
    : IClassFixture<RedisServer>, IClassFixture<PostgreSqlServer>, IClassFixture<NatsServer>
{
    private static readonly string? Executable = Environment.GetEnvironmentVariable("SHAREDRUNTIME_NATIVE_EXECUTABLE") is { Length: > 0 } path ? path : null;

    [SkippableFact]
    public async Task StateOnRedisAndPostgreSqlAndEventsThroughRedisAndJetStream()
    {
        Skip.If(Executable is null, "SHAREDRUNTIME_NATIVE_EXECUTABLE is not set");
        TestServers.Require("redis-server", redis.Missing);
        TestServers.Require("PostgreSQL", postgres.Missing);
        TestServers.Require("nats-server", nats.Missing);
        var folder = Directory.CreateTempSubdirectory("sharedruntime-native-backends-").FullName;
        var delivered = new ConcurrentQueue<string>();
        await using var subscriber = await TestApp.StartAsync(async context =>
        {
            if (context.Request.Path == "/dapr/subscribe")
            {
                await context.Response.WriteAsync("[]");
                return;
            }
            using var reader = new StreamReader(context.Request.Body);
            delivered.Enqueue(context.Request.Path + " " + await reader.ReadToEndAsync());
        });
        await File.WriteAllTextAsync(Path.Combine(folder, "resources.yaml"),
            Resources.Component("redis", "state.redis", new Dictionary<string, string> { ["redisHost"] = redis.Host }) +
            Resources.Component("postgres", "state.postgresql", new Dictionary<string, string> { ["connectionString"] = postgres.ConnectionString }) +
            Resources.Component("redis-events", "pubsub.redis", new Dictionary<string, string> { ["redisHost"] = redis.Host }) +
            Resources.Component("nats-events", "pubsub.jetstream", new Dictionary<string, string> { ["natsURL"] = nats.Url, ["streamName"] = "native" }) +
            Resources.Tenant("orders", "orders-token") +
            Resources.Tenant("billing", "billing-token", appEndpoint: subscriber.Address.ToString().TrimEnd('/')) +
            Subscription("from-redis", "redis-events", "/from-redis") +
            Subscription("from-nats", "nats-events", "/from-nats"));
        await using var runtime = await RuntimeProcess.StartExecutableReadyAsync(Executable, "--resources-path", folder, "--state-dir", Path.Combine(folder, "state"),
            "--handoff-socket", "none");

        using var orders = Client(runtime, "orders-token");
        using var billing = Client(runtime, "billing-token");
        foreach (var store in new[] { "redis", "postgres" })
        {
            // Dapr.Client saves and reads over gRPC.
            await orders.SaveStateAsync(store, "order-1", new Order(42, store));
            var (read, etag) = await orders.GetStateAndETagAsync<Order>(store, "order-1");
            Assert.Equal(new Order(42, store), read);
            Assert.True(await orders.TrySaveStateAsync(store, "order-1", new Order(43, store), etag));
            Assert.False(await orders.TrySaveStateAsync(store, "order-1", new Order(44, store), etag));
            Assert.Equal(new Order(43, store), await orders.GetStateAsync<Order>(store, "order-1"));
            Assert.Null(await billing.GetStateAsync<Order>(store, "order-1"));

            using var http = new HttpClient { BaseAddress = runtime.HttpAddress };
            using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1.0/state/{store}/order-1");
            request.Headers.Add("dapr-api-token", "orders-token");
            using var answer = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            Assert.Contains("43", await answer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        await orders.PublishEventAsync("redis-events", "invoices", new Order(7, "by-redis"));
        await orders.PublishEventAsync("nats-events", "invoices", new Order(8, "by-nats"));
        await Eventually.TrueAsync(() => Task.FromResult(
                delivered.Any(e => e.StartsWith("/from-redis", StringComparison.Ordinal) && e.Contains("by-redis", StringComparison.Ordinal)) &&
                delivered.Any(e => e.StartsWith("/from-nats", StringComparison.Ordinal) && e.Contains("by-nats", StringComparison.Ordinal))),
            TimeSpan.FromSeconds(20), "the subscriber app received an event through each broker");
        Assert.False(runtime.HasExited);
    }

    private static DaprClient Client(RuntimeProcess runtime, string token) =>
        new DaprClientBuilder().UseHttpEndpoint(runtime.HttpAddress.ToString()).UseGrpcEndpoint(runtime.GrpcAddress.ToString()).UseDaprApiToken(token).Build();

    private static string Subscription(string name, string pubsub, string route) => $"""
        apiVersion: dapr.io/v2alpha1
        kind: Subscription
        metadata:
          name: {name}
        spec:
          pubsubname: {pubsub}
          topic: invoices
          routes:
            default: {route}
        scopes: [billing]
        ---

        """;

    private sealed record Order(int Id, string Note);
}
