using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Xunit.Abstractions;

namespace SharedRuntime.FunctionalTests.Hostile;

/// <summary>
/// What a tenant's app can make the runtime parse: its answer to <c>GET /dapr/subscribe</c> (too big, too deep, too
/// many subscriptions, a match expression nested beyond the parser's bound), and a declarative Subscription with such
/// an expression. Each is refused for that app alone, logged once naming it, and the other tenant is served.
/// </summary>
[Collection(HostileTenantsCollection.Name)]
public sealed class ParsingHostileTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly List<IAsyncDisposable> _owned = [];

    private static string DeepMatch => new string('!', 300_000) + "event.a == 1";

    public static TheoryData<string, string> Answers => new()
    {
        { "deep-match", "longer than the 4096 allowed" },
        { "deep-match-within-length", "nested more than 32 deep" },
        { "nested-json", "depth" },
        { "many-subscriptions", "more than 100 subscriptions" },
        { "huge-chunked", "larger than" },
        { "huge-with-length", "larger than" },
    };

    [Theory]
    [MemberData(nameof(Answers))]
    public async Task A_hostile_subscribe_answer_costs_only_that_apps_discovered_subscriptions(string attack, string reason)
    {
        var app = await AppAsync(context => AnswerAsync(context, attack));
        var runtime = await StartAsync(app, extra: new Dictionary<string, string>
        {
            ["attacker-declared.yaml"] = """
                apiVersion: dapr.io/v1alpha1
                kind: Subscription
                metadata:
                  name: attacker-declared
                spec:
                  pubsubname: pubsub
                  topic: declared
                  route: /declared
                scopes:
                  - attacker
                """,
        });

        // The attacker's SDK checks the runtime's health as it starts: the runtime asks its app.
        using (var health = await runtime.Attacker.GetAsync("/v1.0/healthz/outbound"))
        {
            Assert.True(health.IsSuccessStatusCode);
        }
        const string refused = "Tenant attacker: the app's answer to GET /dapr/subscribe is refused";
        await runtime.Process.WaitForLogAsync(refused, TimeSpan.FromSeconds(30));
        var line = runtime.Process.Log.Split('\n').First(l => l.Contains(refused, StringComparison.Ordinal));
        Assert.Contains(reason, runtime.Process.Log[runtime.Process.Log.IndexOf(refused, StringComparison.Ordinal)..], StringComparison.Ordinal);
        output.WriteLine(line.Length > 300 ? line[..300] : line);

        // The app's declarative subscription still applies; nothing it discovered does.
        try
        {
            await Eventually.TrueAsync(async () => (await SubscribedTopicsAsync(runtime.Attacker)).SequenceEqual(["declared"]), TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException)
        {
            output.WriteLine(string.Join(",", await SubscribedTopicsAsync(runtime.Attacker)));
            output.WriteLine(runtime.Process.Log);
            throw;
        }

        // A configuration change reconciles subscriptions again: the app is not asked again, and the refusal is not logged again.
        await File.WriteAllTextAsync(Path.Combine(runtime.ResourcesPath, "zz-later.yaml"), Resources.Component("later", "state.in-memory"));
        await Eventually.TrueAsync(() => Task.FromResult(Count(runtime.Process.Log, "Configuration applied") >= 2), TimeSpan.FromSeconds(10));
        await runtime.AssertBystanderServedAsync();
        Assert.Equal(1, Count(runtime.Process.Log, refused));

        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"{attack}: peak RSS {peak / 1048576} MB");
    }

    [Fact]
    public async Task A_declarative_subscription_with_a_deeply_nested_match_is_refused_alone()
    {
        var deep = DeepMatch.Replace("\"", "\\\"", StringComparison.Ordinal);
        var runtime = await StartAsync(app: null, extra: new Dictionary<string, string>
        {
            ["subscriptions.yaml"] = $"""
                apiVersion: dapr.io/v2alpha1
                kind: Subscription
                metadata:
                  name: attacker-deep
                spec:
                  pubsubname: pubsub
                  topic: orders
                  routes:
                    rules:
                      - match: "{deep}"
                        path: /deep
                    default: /orders
                scopes:
                  - attacker
                ---
                apiVersion: dapr.io/v1alpha1
                kind: Subscription
                metadata:
                  name: attacker-plain
                spec:
                  pubsubname: pubsub
                  topic: plain
                  route: /plain
                scopes:
                  - attacker
                """,
        });

        await runtime.Process.WaitForLogAsync("Subscription refused", TimeSpan.FromSeconds(10));
        var line = runtime.Process.Log.Split('\n').First(l => l.Contains("Subscription refused", StringComparison.Ordinal));
        Assert.Contains("Subscription/attacker-deep", line, StringComparison.Ordinal);
        Assert.Contains("attacker", line, StringComparison.Ordinal);
        Assert.Contains("longer than", line, StringComparison.Ordinal);
        Assert.True(line.Length < 2000, $"the refusal repeats the expression: {line.Length} characters");
        output.WriteLine(line);

        // Only that document is refused: the same file's other Subscription and every tenant apply.
        Assert.DoesNotContain("Subscription/attacker-plain", runtime.Process.Log, StringComparison.Ordinal);
        using var metadata = await runtime.Attacker.GetAsync("/v1.0/metadata");
        Assert.True(metadata.IsSuccessStatusCode);
        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"declarative deep match: peak RSS {peak / 1048576} MB");
    }

    private static async Task AnswerAsync(HttpContext context, string attack)
    {
        if (context.Request.Path != "/dapr/subscribe")
        {
            return;
        }
        context.Response.ContentType = "application/json";
        switch (attack)
        {
            case "deep-match":
            case "deep-match-within-length":
                var match = attack == "deep-match" ? DeepMatch : new string('!', 4000) + "event.a == 1";
                await context.Response.WriteAsync(JsonSerializer.Serialize(new[]
                {
                    new { pubsubname = "pubsub", topic = "orders", routes = new { rules = new[] { new { match, path = "/deep" } }, @default = "/orders" } },
                }));
                break;
            case "nested-json":
                await context.Response.WriteAsync(
                    """[{"pubsubname":"pubsub","topic":"orders","route":"/orders","extra":"""
                    + new string('[', 100_000) + new string(']', 100_000) + "}]");
                break;
            case "many-subscriptions":
                await context.Response.WriteAsync("[" + string.Join(",", Enumerable.Range(0, 10_000)
                    .Select(i => $$"""{"pubsubname":"pubsub","topic":"t{{i}}","route":"/t"}""")) + "]");
                break;
            case "huge-chunked":
            case "huge-with-length":
                const int total = 50 * 1024 * 1024;
                if (attack == "huge-with-length")
                {
                    context.Response.ContentLength = total;
                }
                var chunk = Encoding.ASCII.GetBytes("[" + new string(' ', 64 * 1024 - 1));
                try
                {
                    for (var sent = 0; sent < total; sent += chunk.Length)
                    {
                        await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
                        chunk.AsSpan().Fill((byte)' ');
                    }
                }
                catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
                {
                    // The runtime stopped reading.
                }
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(attack), attack, null);
        }
    }

    private static async Task<IReadOnlyList<string>> SubscribedTopicsAsync(HttpClient client)
    {
        using var response = await client.GetAsync("/v1.0/metadata");
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.TryGetProperty("subscriptions", out var subscriptions)
            ? subscriptions.EnumerateArray().Select(s => s.GetProperty("topic").GetString() ?? "").Order(StringComparer.Ordinal).ToList()
            : [];
    }

    private static int Count(string text, string what)
    {
        var count = 0;
        for (var at = text.IndexOf(what, StringComparison.Ordinal); at >= 0; at = text.IndexOf(what, at + what.Length, StringComparison.Ordinal))
        {
            count++;
        }
        return count;
    }

    private async Task<TestApp> AppAsync(RequestDelegate handler)
    {
        var app = await TestApp.StartAsync(handler);
        _owned.Add(app);
        return app;
    }

    private async Task<HostileRuntime> StartAsync(TestApp? app, Dictionary<string, string> extra)
    {
        var attacker = app is null
            ? null
            : $"""
                apiVersion: sharedruntime.io/v1alpha1
                kind: Tenant
                metadata:
                  name: attacker
                spec:
                  appId: attacker
                  apiToken:
                    value: "{HostileRuntime.AttackerToken}"
                  appEndpoint: {app.Address.ToString().TrimEnd('/')}
                  appChannel:
                    discoverSubscriptions: true
                ---

                """;
        // Named here: the harness looks for "name: pubsub" to decide whether to add it, which "pubsubname: pubsub" also contains.
        extra["zz-pubsub.yaml"] = Resources.Component("pubsub", "pubsub.in-memory");
        var runtime = await HostileRuntime.StartAsync(extra, attackerTenant: attacker);
        _owned.Insert(0, runtime);
        return runtime;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var owned in _owned)
        {
            await owned.DisposeAsync();
        }
    }
}
