using System.Net;
using System.Text;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.FunctionalTests.Http;

public sealed class MetricsTests
{
    // Meters are process-wide and other tests run runtimes in this process too: the app-ids here are used nowhere else.
    [Fact]
    public async Task PerTenantSeriesAreExportedInPrometheusFormat()
    {
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("metered-orders", "orders-token", "requestsPerSecond: 0.01\nburst: 2") +
            Resources.Tenant("metered-billing", "billing-token") +
            Resources.Component("store", "state.in-memory"));
        var orders = runtime.Client("orders-token");
        for (var i = 0; i < 4; i++)
        {
            await orders.GetAsync("/v1.0/state/store/k");
        }
        await runtime.Client("billing-token").GetAsync("/v1.0/metadata");

        using var scraper = new HttpClient { BaseAddress = runtime.MetricsAddress };
        string text = "";
        await Eventually.TrueAsync(async () =>
        {
            text = await scraper.GetStringAsync("/metrics");
            return text.Contains("sharedruntime_rejections_total") && text.Contains("app_id=\"metered-billing\"");
        }, TimeSpan.FromSeconds(10));

        Assert.Equal(2, Value(text, "sharedruntime_requests_total", ("app_id", "metered-orders"), ("api", "state"), ("code", "204")));
        Assert.Equal(2, Value(text, "sharedruntime_requests_total", ("app_id", "metered-orders"), ("api", "state"), ("code", "429")));
        Assert.Equal(1, Value(text, "sharedruntime_requests_total", ("app_id", "metered-billing"), ("api", "metadata"), ("code", "200")));
        Assert.Equal(2, Value(text, "sharedruntime_rejections_total", ("app_id", "metered-orders"), ("reason", "rate_limited")));
        Assert.Null(Value(text, "sharedruntime_rejections_total", ("app_id", "metered-billing"), ("reason", "rate_limited")));
        Assert.Contains("sharedruntime_request_duration_seconds_bucket", text);
        Assert.Contains("sharedruntime_inflight_requests", text);
        Assert.DoesNotContain("orders-token", text);
    }

    [Fact]
    public async Task AQuotaRefusalCountsAsTheSameRejectionOverHttpAndGrpc()
    {
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("refused-over-http", "refused-http-token", "stateMaxKeys: 1") +
            Resources.Tenant("refused-over-grpc", "refused-grpc-token", "stateMaxKeys: 1") +
            Resources.Component("store", "state.in-memory"));

        var http = runtime.Client("refused-http-token");
        Assert.Equal(HttpStatusCode.NoContent, (await http.PostAsync("/v1.0/state/store", Json("""[{"key":"a","value":1}]"""))).StatusCode);
        Assert.Equal((HttpStatusCode)507, (await http.PostAsync("/v1.0/state/store", Json("""[{"key":"b","value":2}]"""))).StatusCode);

        using var channel = GrpcChannel.ForAddress(runtime.GrpcAddress);
        var grpc = new Autogen.Dapr.DaprClient(channel);
        var token = new Metadata { { "dapr-api-token", "refused-grpc-token" } };
        await grpc.SaveStateAsync(Save("a"), token, deadline: DateTime.UtcNow.AddSeconds(30));
        var refused = await Assert.ThrowsAsync<RpcException>(async () => await grpc.SaveStateAsync(Save("b"), token, deadline: DateTime.UtcNow.AddSeconds(30)));
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.StartsWith("ERR_TENANT_QUOTA_EXCEEDED", refused.Status.Detail, StringComparison.Ordinal);
        var missing = await Assert.ThrowsAsync<RpcException>(async () => await grpc.GetStateAsync(
            new Autogen.GetStateRequest { StoreName = "nowhere", Key = "a" }, token, deadline: DateTime.UtcNow.AddSeconds(30)));
        Assert.Equal(StatusCode.InvalidArgument, missing.StatusCode);
        // A message that is not protobuf is refused before the service runs; it is still the caller's 400.
        var garbage = new Method<byte[], byte[]>(MethodType.Unary, "dapr.proto.runtime.v1.Dapr", "GetState",
            Marshallers.Create(static b => b, static b => b), Marshallers.Create(static b => b, static b => b));
        var malformed = await Assert.ThrowsAsync<RpcException>(async () => await channel.CreateCallInvoker().AsyncUnaryCall(garbage, null,
            new CallOptions(token, DateTime.UtcNow.AddSeconds(30)), [0x0a, 0xff]));
        Assert.Equal(StatusCode.InvalidArgument, malformed.StatusCode);
        Assert.Equal("ERR_MALFORMED_REQUEST", malformed.Trailers.GetValue("dapr-error-code"));

        using var scraper = new HttpClient { BaseAddress = runtime.MetricsAddress };
        string text = "";
        await Eventually.TrueAsync(async () =>
        {
            text = await scraper.GetStringAsync("/metrics");
            return Value(text, "sharedruntime_requests_total", ("app_id", "refused-over-grpc"), ("api", "state"), ("code", "400")) == 2;
        }, TimeSpan.FromSeconds(10));

        foreach (var app in new[] { "refused-over-http", "refused-over-grpc" })
        {
            Assert.Equal(1, Value(text, "sharedruntime_rejections_total", ("app_id", app), ("reason", "quota_exceeded")));
            Assert.Equal(1, Value(text, "sharedruntime_requests_total", ("app_id", app), ("api", "state"), ("code", "507")));
        }
        // A gRPC outcome is labelled with the HTTP status it stands for: OK is 200, an unknown store or a bad message 400.
        Assert.Equal(1, Value(text, "sharedruntime_requests_total", ("app_id", "refused-over-grpc"), ("api", "state"), ("code", "200")));
        Assert.Equal(2, Value(text, "sharedruntime_requests_total", ("app_id", "refused-over-grpc"), ("api", "state"), ("code", "400")));
        Assert.Equal(1, Value(text, "sharedruntime_requests_total", ("app_id", "refused-over-http"), ("api", "state"), ("code", "204")));
    }

    [Fact]
    public async Task AMemoryRefusalCountsAsTheSameRejectionOverHttpAndGrpc()
    {
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("squeezed-over-http", "squeezed-http-token", "maxMemoryBytes: 4096") +
            Resources.Tenant("squeezed-over-grpc", "squeezed-grpc-token", "maxMemoryBytes: 4096") +
            Resources.Component("store", "state.in-memory"));
        var value = new string('x', 8192);

        var http = runtime.Client("squeezed-http-token");
        var answer = await http.PostAsync("/v1.0/state/store", Json($$"""[{"key":"a","value":"{{value}}"}]"""));
        var httpStatus = (int)answer.StatusCode;
        Assert.Contains("ERR_TENANT_MEMORY_BUDGET", await answer.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var channel = GrpcChannel.ForAddress(runtime.GrpcAddress);
        var grpc = new Autogen.Dapr.DaprClient(channel);
        var token = new Metadata { { "dapr-api-token", "squeezed-grpc-token" } };
        var request = new Autogen.SaveStateRequest { StoreName = "store" };
        request.States.Add(new Autogen.StateItem { Key = "a", Value = ByteString.CopyFromUtf8(value) });
        var refused = await Assert.ThrowsAsync<RpcException>(async () => await grpc.SaveStateAsync(request, token, deadline: DateTime.UtcNow.AddSeconds(30)));
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.StartsWith("ERR_TENANT_MEMORY_BUDGET", refused.Status.Detail, StringComparison.Ordinal);

        using var scraper = new HttpClient { BaseAddress = runtime.MetricsAddress };
        string text = "";
        await Eventually.TrueAsync(async () =>
        {
            text = await scraper.GetStringAsync("/metrics");
            return Value(text, "sharedruntime_requests_total", ("app_id", "squeezed-over-grpc")) is not null;
        }, TimeSpan.FromSeconds(10));
        foreach (var app in new[] { "squeezed-over-http", "squeezed-over-grpc" })
        {
            Assert.Equal(1, Value(text, "sharedruntime_rejections_total", ("app_id", app), ("reason", "memory_budget")));
            Assert.Equal(1, Value(text, "sharedruntime_requests_total", ("app_id", app), ("api", "state"), ("code", httpStatus.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        }
    }

    [Fact]
    public async Task ATenantBoundABuildingBlockRefusesForCountsAsARejectionWithItsReason()
    {
        await using var runtime = await TestRuntime.StartAsync(
            Resources.Tenant("bounded", "bounded-token") +
            Resources.Tenant("unbounded", "unbounded-token") +
            Resources.Component("locks", "lock.in-memory", new Dictionary<string, string> { ["maxLocksPerApp"] = "1" }) +
            Resources.Component("events", "pubsub.in-memory", new Dictionary<string, string> { ["maxTopicsPerApp"] = "1" }));
        var bounded = runtime.Client("bounded-token");

        foreach (var resource in new[] { "first", "second" })
        {
            using var locked = await bounded.PostAsync("/v1.0-alpha1/lock/locks", Json($$"""{"resourceId":"{{resource}}","lockOwner":"me","expiryInSeconds":60}"""));
            Assert.True(resource == "first" ? locked.IsSuccessStatusCode : (int)locked.StatusCode == 429, $"{resource}: {(int)locked.StatusCode}");
        }
        foreach (var topic in new[] { "first", "second" })
        {
            using var published = await bounded.PostAsync($"/v1.0/publish/events/{topic}", Json("{}"));
            Assert.True(topic == "first" ? published.IsSuccessStatusCode : (int)published.StatusCode == 429, $"{topic}: {(int)published.StatusCode}");
        }
        // The other tenant has bounds of its own: its first lock and topic are not refused.
        using (var locked = await runtime.Client("unbounded-token").PostAsync("/v1.0-alpha1/lock/locks", Json("""{"resourceId":"first","lockOwner":"me","expiryInSeconds":60}""")))
        {
            Assert.True(locked.IsSuccessStatusCode, $"{(int)locked.StatusCode}");
        }

        using var scraper = new HttpClient { BaseAddress = runtime.MetricsAddress };
        string text = "";
        await Eventually.TrueAsync(async () =>
        {
            text = await scraper.GetStringAsync("/metrics");
            return Value(text, "sharedruntime_rejections_total", ("app_id", "bounded"), ("reason", "topics_exceeded")) is not null;
        }, TimeSpan.FromSeconds(10));
        Assert.Equal(1, Value(text, "sharedruntime_rejections_total", ("app_id", "bounded"), ("reason", "locks_exceeded")));
        Assert.Equal(1, Value(text, "sharedruntime_rejections_total", ("app_id", "bounded"), ("reason", "topics_exceeded")));
        Assert.Null(Value(text, "sharedruntime_rejections_total", ("app_id", "unbounded")));
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static Autogen.SaveStateRequest Save(string key)
    {
        var request = new Autogen.SaveStateRequest { StoreName = "store" };
        request.States.Add(new Autogen.StateItem { Key = key, Value = ByteString.CopyFromUtf8("1") });
        return request;
    }

    /// <summary>The value of the series <paramref name="name"/> whose labels include all of <paramref name="labels"/>.</summary>
    private static double? Value(string text, string name, params (string Key, string Value)[] labels)
    {
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith(name + "{", StringComparison.Ordinal))
            {
                continue;
            }
            var close = line.IndexOf('}');
            var labelText = line[(name.Length + 1)..close];
            if (labels.All(l => labelText.Contains($"{l.Key}=\"{l.Value}\"", StringComparison.Ordinal)))
            {
                return double.Parse(line[(close + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        return null;
    }
}
