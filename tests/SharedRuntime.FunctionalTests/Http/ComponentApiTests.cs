using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using SharedRuntime.Components;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>Publish, bindings, secrets and metadata, each with what a second tenant can and cannot do.</summary>
public sealed class ComponentApiTests : IAsyncLifetime
{
    private TestRuntime _runtime = null!;
    private TestApp _bindingTarget = null!;
    private string _secretsFile = null!;
    private readonly List<(string Method, string Path, string Body)> _bindingCalls = [];

    public async Task InitializeAsync()
    {
        _bindingTarget = await TestApp.StartAsync(async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync();
            lock (_bindingCalls)
            {
                _bindingCalls.Add((context.Request.Method, context.Request.Path.Value ?? "", body));
            }
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"answer":"from-app"}""");
        });
        _secretsFile = Path.Combine(Path.GetTempPath(), $"secrets-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(_secretsFile, """{"db":{"password":"s3cret","user":"admin"},"apikey":"k-123"}""");
        Environment.SetEnvironmentVariable("SRTEST_SECRET_TOKEN", "env-value");

        _runtime = await TestRuntime.StartAsync(
            Resources.Tenant("orders", "orders-token") +
            Resources.Tenant("billing", "billing-token") +
            Resources.Component("pubsub", "pubsub.in-memory") +
            Resources.Component("limited", "pubsub.in-memory", new Dictionary<string, string> { ["allowedTopics"] = "allowed" }) +
            Resources.Component("orders-pubsub", "pubsub.in-memory", scopes: ["orders"]) +
            Resources.Component("target", "bindings.http", new Dictionary<string, string> { ["url"] = _bindingTarget.Address.ToString() }, ["orders"]) +
            Resources.Component("envsecrets", "secretstores.local.env", new Dictionary<string, string> { ["prefix"] = "SRTEST_SECRET_" }) +
            Resources.Component("filesecrets", "secretstores.local.file", new Dictionary<string, string> { ["secretsFile"] = _secretsFile }, ["orders"]));
    }

    public async Task DisposeAsync()
    {
        await _runtime.DisposeAsync();
        await _bindingTarget.DisposeAsync();
        File.Delete(_secretsFile);
    }

    private HttpClient Orders => _runtime.Client("orders-token");
    private HttpClient Billing => _runtime.Client("billing-token");

    private async Task<ReceivedMessage> ReceiveOneAsync(string pubsub, string topic, Func<Task> publish)
    {
        var broker = (IPubSubBroker)_runtime.Configuration.Current.Components[pubsub].Instance!;
        var received = new TaskCompletionSource<ReceivedMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var subscription = await broker.SubscribeAsync(topic, "test-" + Guid.NewGuid(), 1, (message, _) =>
        {
            received.TrySetResult(message);
            return ValueTask.FromResult(DeliveryOutcome.Success);
        }, CancellationToken.None);
        await publish();
        return await received.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task PublishWrapsTheBodyInACloudEventFromTheCallingApp()
    {
        var message = await ReceiveOneAsync("pubsub", "orders/created", async () =>
            await StatusAsync(await Orders.PostAsync("/v1.0/publish/pubsub/orders/created", Json("""{"id":7}""")), HttpStatusCode.NoContent));
        Assert.Equal("application/cloudevents+json", message.ContentType);
        using var ce = JsonDocument.Parse(message.Data);
        var root = ce.RootElement;
        Assert.Equal("orders", root.GetProperty("source").GetString());
        Assert.Equal("com.dapr.event.sent", root.GetProperty("type").GetString());
        Assert.Equal("1.0", root.GetProperty("specversion").GetString());
        Assert.Equal("orders/created", root.GetProperty("topic").GetString());
        Assert.Equal("pubsub", root.GetProperty("pubsubname").GetString());
        Assert.StartsWith("application/json", root.GetProperty("datacontenttype").GetString());
        Assert.Equal(7, root.GetProperty("data").GetProperty("id").GetInt32());
        Assert.True(Guid.TryParse(root.GetProperty("id").GetString(), out _));
        Assert.StartsWith("00-", root.GetProperty("traceparent").GetString());
    }

    [Fact]
    public async Task RawPayloadIsPublishedAsIs()
    {
        var message = await ReceiveOneAsync("pubsub", "raw", async () =>
            await StatusAsync(await Orders.PostAsync("/v1.0/publish/pubsub/raw?metadata.rawPayload=true", new StringContent("plain bytes")), HttpStatusCode.NoContent));
        Assert.Equal("plain bytes", System.Text.Encoding.UTF8.GetString(message.Data.Span));
    }

    [Fact]
    public async Task BulkPublishDeliversEveryEntry()
    {
        var broker = (IPubSubBroker)_runtime.Configuration.Current.Components["pubsub"].Instance!;
        var seen = new List<string>();
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var subscription = await broker.SubscribeAsync("bulk", "bulk-test", 1, (message, _) =>
        {
            using var ce = JsonDocument.Parse(message.Data);
            lock (seen)
            {
                seen.Add(ce.RootElement.GetProperty("data").GetRawText());
                if (seen.Count == 2)
                {
                    all.TrySetResult();
                }
            }
            return ValueTask.FromResult(DeliveryOutcome.Success);
        }, CancellationToken.None);
        var body = """[{"entryId":"1","event":{"n":1},"contentType":"application/json"},{"entryId":"2","event":"two","contentType":"text/plain"}]""";
        await StatusAsync(await Orders.PostAsync("/v1.0-alpha1/publish/bulk/pubsub/bulk", Json(body)), HttpStatusCode.NoContent);
        await all.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Contains("""{"n":1}""", seen);
        Assert.Contains("\"two\"", seen);
    }

    [Fact]
    public async Task PublishErrors()
    {
        await ErrorAsync(await Orders.PostAsync("/v1.0/publish/nope/t", Json("{}")), HttpStatusCode.NotFound, "ERR_PUBSUB_NOT_FOUND");
        await ErrorAsync(await Orders.PostAsync("/v1.0/publish/limited/other", Json("{}")), HttpStatusCode.Forbidden, "ERR_PUBSUB_FORBIDDEN");
        await StatusAsync(await Orders.PostAsync("/v1.0/publish/limited/allowed", Json("{}")), HttpStatusCode.NoContent);
    }

    [Fact]
    public async Task APubSubScopedToAnotherAppLooksLikeItDoesNotExist()
    {
        await StatusAsync(await Orders.PostAsync("/v1.0/publish/orders-pubsub/t", Json("{}")), HttpStatusCode.NoContent);
        await ErrorAsync(await Billing.PostAsync("/v1.0/publish/orders-pubsub/t", Json("{}")), HttpStatusCode.NotFound, "ERR_PUBSUB_NOT_FOUND");
    }

    [Fact]
    public async Task OutputBindingCallsTheTargetAndReturnsItsAnswer()
    {
        var response = await Orders.PostAsync("/v1.0/bindings/target", Json("""{"operation":"post","data":{"hello":"world"},"metadata":{"path":"/hook"}}"""));
        await StatusAsync(response, HttpStatusCode.OK);
        Assert.Equal("""{"answer":"from-app"}""", await response.Content.ReadAsStringAsync());
        lock (_bindingCalls)
        {
            Assert.Contains(_bindingCalls, c => c.Method == "POST" && c.Path == "/hook" && c.Body == """{"hello":"world"}""");
        }
        await ErrorAsync(await Orders.PostAsync("/v1.0/bindings/target", Json("""{"data":1}""")), HttpStatusCode.BadRequest, "ERR_MALFORMED_REQUEST");
    }

    [Fact]
    public async Task AnotherTenantCannotUseAScopedBinding()
    {
        var calls = _bindingCalls.Count;
        await ErrorAsync(await Billing.PostAsync("/v1.0/bindings/target", Json("""{"operation":"post","data":1}""")), HttpStatusCode.NotFound, "ERR_INVOKE_OUTPUT_BINDING");
        Assert.Equal(calls, _bindingCalls.Count);
    }

    [Fact]
    public async Task SecretsFromEnvironmentAndFile()
    {
        Assert.Equal("""{"TOKEN":"env-value"}""", await Orders.GetStringAsync("/v1.0/secrets/envsecrets/TOKEN"));
        Assert.Equal("""{"db:password":"s3cret"}""", await Orders.GetStringAsync("/v1.0/secrets/filesecrets/db:password"));
        var bulk = await Orders.GetStringAsync("/v1.0/secrets/filesecrets/bulk");
        using var json = JsonDocument.Parse(bulk);
        Assert.Equal("k-123", json.RootElement.GetProperty("apikey").GetProperty("apikey").GetString());
        await ErrorAsync(await Orders.GetAsync("/v1.0/secrets/filesecrets/missing"), HttpStatusCode.NotFound, "ERR_SECRET_GET");
        await ErrorAsync(await Orders.GetAsync("/v1.0/secrets/nope/x"), HttpStatusCode.Unauthorized, "ERR_SECRET_STORE_NOT_FOUND");
    }

    [Fact]
    public async Task AnotherTenantCannotReadAScopedSecretStore()
    {
        await ErrorAsync(await Billing.GetAsync("/v1.0/secrets/filesecrets/db:password"), HttpStatusCode.Unauthorized, "ERR_SECRET_STORE_NOT_FOUND");
        await ErrorAsync(await Billing.GetAsync("/v1.0/secrets/filesecrets/bulk"), HttpStatusCode.Unauthorized, "ERR_SECRET_STORE_NOT_FOUND");
    }

    [Fact]
    public async Task MetadataShowsOnlyTheCallersComponentsAndAttributes()
    {
        await StatusAsync(await Orders.PutAsync("/v1.0/metadata/team", new StringContent("checkout-squad")), HttpStatusCode.NoContent);

        using var orders = JsonDocument.Parse(await Orders.GetStringAsync("/v1.0/metadata"));
        var orderComponents = orders.RootElement.GetProperty("components").EnumerateArray().Select(c => c.GetProperty("name").GetString()).ToList();
        Assert.Contains("target", orderComponents);
        Assert.Contains("filesecrets", orderComponents);
        Assert.Equal("checkout-squad", orders.RootElement.GetProperty("extended").GetProperty("team").GetString());

        using var billing = JsonDocument.Parse(await Billing.GetStringAsync("/v1.0/metadata"));
        Assert.Equal("billing", billing.RootElement.GetProperty("id").GetString());
        var billingComponents = billing.RootElement.GetProperty("components").EnumerateArray().Select(c => c.GetProperty("name").GetString()).ToList();
        Assert.DoesNotContain("target", billingComponents);
        Assert.DoesNotContain("filesecrets", billingComponents);
        Assert.DoesNotContain("orders-pubsub", billingComponents);
        Assert.Contains("pubsub", billingComponents);
        Assert.False(billing.RootElement.GetProperty("extended").TryGetProperty("team", out _));
    }
}
