using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace SharedRuntime.LoadTest;

/// <summary>
/// One tenant's app hangs on every request while another tenant's invocations and event deliveries go on: their
/// latency is measured with the stuck app answering normally and with it hanging, side by side in one run.
/// </summary>
internal static class HungAppScenario
{
    public static async Task RunAsync(LoadSettings settings)
    {
        var deliveries = new Samples();
        await using var lively = await LocalApp.StartAsync(deliveries, hangs: () => false);
        var hanging = false;
        await using var stuck = await LocalApp.StartAsync(null, hangs: () => Volatile.Read(ref hanging));
        var yaml = $"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: pubsub
            spec:
              type: pubsub.in-memory
              version: v1
              metadata:
                - name: redeliveryDelay
                  value: 1s
                - name: maxMessagesPerTopic
                  value: "100000"
            ---
            {Tenant("caller", null, "")}
            {Tenant("noisy", null, "")}
            {Tenant("lively", lively.Address, "")}
            {Tenant("stuck", stuck.Address, "  appChannel:\n    maxConcurrency: 8\n    maxQueue: 8\n    timeout: 60s\n")}
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: news
            spec:
              pubsubname: pubsub
              topic: news
              routes:
                default: /news
            scopes: [lively, stuck]
            """;
        await using var runtime = await RuntimeProcess.StartAsync(settings, yaml, []);
        var port = runtime.HttpPort;
        using var caller = Clients.Create("caller-token", 64);
        using var noisy = Clients.Create("noisy-token", 256);
        HttpRequestMessage Invoke(string app) => new(HttpMethod.Get, $"http://127.0.0.1:{port}/v1.0/invoke/{app}/method/work");
        HttpRequestMessage Publish() => new(HttpMethod.Post, $"http://127.0.0.1:{port}/v1.0/publish/pubsub/news")
        {
            Content = new StringContent(Stopwatch.GetTimestamp().ToString(CultureInfo.InvariantCulture), Encoding.UTF8, "text/plain"),
        };
        var publishRps = settings.QuietRps / 2;

        // Warm up both paths.
        await Task.WhenAll(
            OpenLoop.RunAsync(caller, _ => Invoke("lively"), settings.QuietRps, TimeSpan.FromSeconds(2), 256, null),
            OpenLoop.RunAsync(caller, _ => Publish(), publishRps, TimeSpan.FromSeconds(2), 256, null));
        await Task.Delay(500);

        var normal = new Phase();
        var hung = new Phase();
        for (var round = 0; round < settings.Rounds; round++)
        {
            foreach (var (phase, hangs) in new[] { (normal, false), (hung, true) })
            {
                Volatile.Write(ref hanging, hangs);
                if (!hangs)
                {
                    stuck.ReleaseHung();
                }
                var duration = TimeSpan.FromSeconds(settings.PhaseSeconds);
                deliveries.Reset();
                await Task.WhenAll(
                    OpenLoop.RunAsync(caller, _ => Invoke("lively"), settings.QuietRps, duration, 4096, phase.Invocations),
                    OpenLoop.RunAsync(caller, _ => Publish(), publishRps, duration, 4096, phase.Publishes),
                    OpenLoop.RunAsync(noisy, _ => Invoke("stuck"), 200, duration, 4096, phase.IntoStuck));
                await Task.Delay(300); // deliveries of the last events of the phase
                phase.Deliveries.AddFrom(deliveries);
            }
        }
        stuck.ReleaseHung();

        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"caller invokes the lively app at {settings.QuietRps} req/s and publishes {publishRps} events/s that both lively and stuck subscribe to; noisy invokes the stuck app at 200 req/s; the stuck app has maxConcurrency 8, maxQueue 8. {settings.Rounds} rounds of {settings.PhaseSeconds}s with the stuck app answering, then hanging.");
        report.AppendLine();
        report.AppendLine("| stuck app | invoke p50 ms | invoke p99 ms | invoke errors | delivery p50 ms | delivery p99 ms | deliveries | publish errors | calls into stuck app: answered / refused 429 / other |");
        report.AppendLine("|---|---|---|---|---|---|---|---|---|");
        report.AppendLine(normal.Row("answering"));
        report.AppendLine(hung.Row("hanging"));
        report.AppendLine();
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"p99 ratio hanging/answering: invocations {hung.Invocations.Percentile(0.99) / normal.Invocations.Percentile(0.99):0.00}x, deliveries {hung.Deliveries.Percentile(0.99) / normal.Deliveries.Percentile(0.99):0.00}x"));
        Console.WriteLine(report.ToString());
        if (settings.Output is { } output)
        {
            await File.WriteAllTextAsync(output, report.ToString());
        }
    }

    private static string Tenant(string name, Uri? endpoint, string extra) => $"""
        apiVersion: sharedruntime.io/v1alpha1
        kind: Tenant
        metadata:
          name: {name}
        spec:
          apiToken: {name}-token
        {(endpoint is null ? "" : $"  appEndpoint: {endpoint.ToString().TrimEnd('/')}\n")}  limits:
            requestsPerSecond: 100000
            burst: 100000
            maxConcurrency: 1024
            maxQueue: 1024
        {extra}---
        """;

    private sealed class Phase
    {
        public Samples Invocations { get; } = new();
        public Samples Publishes { get; } = new();
        public Samples IntoStuck { get; } = new();
        public Samples Deliveries { get; } = new();

        public string Row(string name) => string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {Invocations.Percentile(0.5):0.00} | {Invocations.Percentile(0.99):0.00} | {Invocations.Errors} | {Deliveries.Percentile(0.5):0.00} | {Deliveries.Percentile(0.99):0.00} | {Deliveries.Requests} | {Publishes.Errors} | {IntoStuck.Admitted} / {IntoStuck.Refused} / {IntoStuck.Errors - IntoStuck.Refused} |");
    }

    /// <summary>An app in this process: answers at once, or hangs until released; records delivery latency of events it receives.</summary>
    private sealed class LocalApp : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private LocalApp(WebApplication app, Uri address)
        {
            _app = app;
            Address = address;
        }

        public Uri Address { get; }

        public void ReleaseHung() => Interlocked.Exchange(ref _release, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

        public static async Task<LocalApp> StartAsync(Samples? deliveries, Func<bool> hangs)
        {
            var port = RuntimeProcess.FreePorts(1)[0];
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port));
            var app = builder.Build();
            LocalApp? self = null;
            app.Run(async context =>
            {
                if (hangs())
                {
                    await Volatile.Read(ref self!._release).Task.WaitAsync(context.RequestAborted);
                }
                if (deliveries is not null && context.Request.Path == "/news")
                {
                    using var reader = new StreamReader(context.Request.Body);
                    var body = await reader.ReadToEndAsync();
                    var data = System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("data").GetString();
                    var sent = long.Parse(data!, CultureInfo.InvariantCulture);
                    deliveries.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds, 200);
                }
                context.Response.StatusCode = 200;
            });
            await app.StartAsync();
            self = new LocalApp(app, new Uri($"http://127.0.0.1:{port}"));
            return self;
        }

        public async ValueTask DisposeAsync()
        {
            ReleaseHung();
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
