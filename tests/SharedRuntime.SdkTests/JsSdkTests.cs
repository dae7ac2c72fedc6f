using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Dapr.Client;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace SharedRuntime.SdkTests;

/// <summary>
/// An unmodified JS SDK app (<c>DaprServer</c> from <c>@dapr/dapr</c> 3.18.0, <c>tests/js/app.js</c>) run by Node.js,
/// configured only with the environment an injector sets, behind a Tenant without any opt-in: its topic handler, its
/// bulk handler and its raw-payload handler receive the events published to them. A second tenant's topic and events
/// never reach it. Needs <c>npm ci --prefix tests/js</c> first; without it the tests fail and say so.
/// </summary>
public sealed class JsSdkTests : IAsyncLifetime
{
    private TestRuntime _runtime = null!;
    private NodeApp _node = null!;
    private TestApp _otherApp = null!;
    private DaprClient _publisher = null!;
    private DaprClient _other = null!;
    private readonly ConcurrentQueue<string> _otherReceived = new();

    public async Task InitializeAsync()
    {
        var folder = JsFolder();
        _otherApp = await TestApp.StartAsync(async context =>
        {
            if (context.Request.Path == "/dapr/subscribe")
            {
                await context.Response.WriteAsync("""[{"pubsubname":"private","topic":"orders","route":"/private-orders"}]""");
                return;
            }
            using var reader = new StreamReader(context.Request.Body);
            _otherReceived.Enqueue(await reader.ReadToEndAsync());
        });
        var appPort = TestRuntime.FreePorts(1)[0];
        _runtime = await TestRuntime.StartAsync(
            Resources.Tenant("fn", "fn-token", appEndpoint: $"http://127.0.0.1:{appPort}") +
            Resources.Tenant("pub", "pub-token") +
            Resources.Tenant("other", "other-token", appEndpoint: _otherApp.Address.ToString().TrimEnd('/')) +
            Resources.Component("pubsub", "pubsub.in-memory", scopes: ["fn", "pub"]) +
            Resources.Component("private", "pubsub.in-memory", scopes: ["other"]));

        _node = NodeApp.Start(folder, new Dictionary<string, string>
        {
            ["DAPR_HTTP_ENDPOINT"] = _runtime.HttpAddress.ToString().TrimEnd('/'),
            ["DAPR_GRPC_ENDPOINT"] = _runtime.GrpcAddress.ToString().TrimEnd('/'),
            ["DAPR_API_TOKEN"] = "fn-token",
            ["APP_PORT"] = $"{appPort}",
        });
        // DaprServer.start() returns once its server listens and the runtime answered its token.
        await _node.WaitForAsync(line => line.TryGetProperty("ready", out _), "the JS app started");

        _publisher = Client("pub-token");
        _other = Client("other-token");
    }

    private DaprClient Client(string token) => new DaprClientBuilder()
        .UseHttpEndpoint(_runtime.HttpAddress.ToString())
        .UseGrpcEndpoint(_runtime.GrpcAddress.ToString())
        .UseDaprApiToken(token)
        .Build();

    public async Task DisposeAsync()
    {
        _publisher?.Dispose();
        _other?.Dispose();
        if (_node is not null)
        {
            await _node.DisposeAsync();
        }
        if (_runtime is not null)
        {
            await _runtime.DisposeAsync();
        }
        if (_otherApp is not null)
        {
            await _otherApp.DisposeAsync();
        }
    }

    /// <summary>tests/js, with its packages installed: the test fails (never skips) when they are not.</summary>
    private static string JsFolder()
    {
        var folder = new DirectoryInfo(AppContext.BaseDirectory);
        while (folder is not null && !File.Exists(Path.Combine(folder.FullName, "SharedRuntime.sln")))
        {
            folder = folder.Parent;
        }
        Assert.True(folder is not null, "SharedRuntime.sln not found above the test folder");
        var js = Path.Combine(folder!.FullName, "tests", "js");
        Assert.True(Directory.Exists(Path.Combine(js, "node_modules", "@dapr", "dapr")),
            $"The JS SDK is not installed in {js}: run `npm ci --prefix tests/js` from the repository root first.");
        return js;
    }

    private Task SubscribedAsync(string topic) =>
        Eventually.TrueAsync(() => Task.FromResult(_runtime.App.Services.GetRequiredService<SharedRuntime.AppChannel.SubscriptionDelivery>()
            .ActiveFor("fn").Any(s => s.Topic == topic)), TimeSpan.FromSeconds(10), $"fn subscribed to {topic}");

    private static bool Is(JsonElement line, string handler, string id) =>
        line.TryGetProperty("handler", out var h) && h.GetString() == handler &&
        line.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object &&
        data.TryGetProperty("id", out var i) && i.GetString() == id;

    [Fact]
    public async Task ATopicHandlerReceivesEventsWithoutAnyOptIn()
    {
        await SubscribedAsync("orders");
        await _publisher.PublishEventAsync("pubsub", "orders", new Order("o-1", 42));

        var line = await _node.WaitForAsync(l => Is(l, "orders", "o-1"), "the topic handler received the event");
        Assert.Equal(42, line.GetProperty("data").GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task ABulkHandlerReceivesEventsInBatches()
    {
        await SubscribedAsync("bulk-orders");
        for (var i = 0; i < 5; i++)
        {
            await _publisher.PublishEventAsync("pubsub", "bulk-orders", new Order($"b-{i}", i));
        }

        for (var i = 0; i < 5; i++)
        {
            await _node.WaitForAsync(l => Is(l, "bulk", $"b-{i}"), $"the bulk handler received b-{i}");
        }
        // The SDK called the handler from bulk requests (it reads entries only from a bulk envelope), and at least
        // one of them carried more than one event (the app prints a request's size once it has answered it).
        await _node.WaitForAsync(l => l.TryGetProperty("handler", out var h) && h.GetString() == "batch" && l.GetProperty("entries").GetInt32() > 1,
            "a bulk request carried more than one event");
    }

    [Fact]
    public async Task ARawSubscriptionsHandlerReadsARawMessageAsPublished()
    {
        await SubscribedAsync("raw-orders");
        await _publisher.PublishEventAsync("pubsub", "raw-orders", new Order("r-1", 7), new Dictionary<string, string> { ["rawPayload"] = "true" });

        var line = await _node.WaitForAsync(l => Is(l, "raw", "r-1"), "the raw handler received the message");
        Assert.Equal(7, line.GetProperty("data").GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task ASecondTenantsTopicsAndEventsNeverReachTheJsApp()
    {
        await SubscribedAsync("orders");
        // The other app shows it is up as an SDK app does, by calling its runtime; then it is asked for its topics.
        using (var health = await _runtime.Client("other-token").GetAsync("/v1.0/healthz"))
        {
            Assert.True(health.IsSuccessStatusCode);
        }
        await Eventually.TrueAsync(() => Task.FromResult(_runtime.App.Services.GetRequiredService<SharedRuntime.AppChannel.SubscriptionDelivery>()
            .ActiveFor("other").Any(s => s.Topic == "orders")), TimeSpan.FromSeconds(10), "other subscribed to its own orders topic");

        // The other tenant publishes to a topic of the same name on its own broker: its own app gets it, the JS app not.
        await _other.PublishEventAsync("private", "orders", new Order("other-1", 1));
        await Eventually.TrueAsync(() => Task.FromResult(_otherReceived.Any(e => e.Contains("other-1", StringComparison.Ordinal))), TimeSpan.FromSeconds(10),
            "the other tenant's app received its event");
        // It cannot publish into the JS app's broker at all.
        using var refused = new HttpRequestMessage(HttpMethod.Post, "/v1.0/publish/pubsub/orders")
        {
            Content = new StringContent("""{"id":"other-2","total":2}""", Encoding.UTF8, "application/json"),
        };
        var answer = await _runtime.Client("other-token").SendAsync(refused);
        Assert.True(answer.StatusCode is >= HttpStatusCode.BadRequest and < HttpStatusCode.InternalServerError, $"publish into another tenant's broker answered {answer.StatusCode}");

        // A later event of its own reaches the JS app; the other tenant's events did not before it.
        await _publisher.PublishEventAsync("pubsub", "orders", new Order("o-after", 3));
        await _node.WaitForAsync(l => Is(l, "orders", "o-after"), "the JS app received its own later event");
        Assert.DoesNotContain(_node.Lines, l => l.ToString().Contains("other-", StringComparison.Ordinal));
        Assert.DoesNotContain(_otherReceived, e => e.Contains("o-after", StringComparison.Ordinal));

        // Neither sees the other's subscriptions.
        Assert.DoesNotContain("\"raw-orders\"", await _runtime.Client("other-token").GetStringAsync("/v1.0/metadata"), StringComparison.Ordinal);
        Assert.DoesNotContain(_runtime.App.Services.GetRequiredService<SharedRuntime.AppChannel.SubscriptionDelivery>().ActiveFor("other"),
            s => s.Topic is "bulk-orders" or "raw-orders");
    }

    private sealed record Order(string Id, int Total);

    /// <summary><c>node app.js</c> in <c>tests/js</c>; each JSON line it prints is kept, the rest is kept as its log.</summary>
    private sealed class NodeApp : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly ConcurrentQueue<JsonElement> _lines = new();
        private readonly ConcurrentQueue<string> _log = new();

        private NodeApp(Process process)
        {
            _process = process;
            process.OutputDataReceived += (_, e) => Add(e.Data);
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    _log.Enqueue(e.Data);
                }
            };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public IReadOnlyCollection<JsonElement> Lines => _lines;

        public static NodeApp Start(string folder, IReadOnlyDictionary<string, string> environment)
        {
            var start = new ProcessStartInfo("node")
            {
                WorkingDirectory = folder,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            start.ArgumentList.Add("app.js");
            // Only what an injector sets: no DAPR_HTTP_PORT or the like inherited from the machine.
            foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("DAPR_", StringComparison.Ordinal) || k is "APP_PORT" or "APP_ID").ToList())
            {
                start.Environment.Remove(name);
            }
            foreach (var (name, value) in environment)
            {
                start.Environment[name] = value;
            }
            try
            {
                return new NodeApp(Process.Start(start)!);
            }
            catch (System.ComponentModel.Win32Exception ex)
            {
                throw new InvalidOperationException($"Node.js (20 or later) must be on PATH to run the JS SDK app: {ex.Message}", ex);
            }
        }

        private void Add(string? line)
        {
            if (line is null)
            {
                return;
            }
            try
            {
                using var document = JsonDocument.Parse(line);
                _lines.Enqueue(document.RootElement.Clone());
            }
            catch (JsonException)
            {
                _log.Enqueue(line);
            }
        }

        /// <summary>Waits for a line matching <paramref name="match"/>; fails with the app's log when it exits or times out.</summary>
        public async Task<JsonElement> WaitForAsync(Func<JsonElement, bool> match, string because)
        {
            JsonElement found = default;
            try
            {
                await Eventually.TrueAsync(() =>
                {
                    foreach (var line in _lines)
                    {
                        if (match(line))
                        {
                            found = line;
                            return Task.FromResult(true);
                        }
                    }
                    return _process.HasExited
                        ? throw new InvalidOperationException($"node exited with {_process.ExitCode} before: {because}\n{string.Join('\n', _log)}")
                        : Task.FromResult(false);
                }, TimeSpan.FromSeconds(20), because);
            }
            catch (TimeoutException ex)
            {
                throw new TimeoutException($"{ex.Message}\nlines: {string.Join('\n', _lines)}\nlog: {string.Join('\n', _log)}", ex);
            }
            return found;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _process.WaitForExitAsync(wait.Token);
            _process.Dispose();
        }
    }
}
