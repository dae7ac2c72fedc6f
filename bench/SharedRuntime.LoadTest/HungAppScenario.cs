using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace SharedRuntime.LoadTest;

/// <summary>
/// One tenant's app holds requests hung while another tenant invokes its own app: the quiet tenant's latency is
/// measured alone (nothing else in flight) and while the other app holds <c>--hung</c> requests, side by side in one
/// run. Both apps are served by one process (this one, on the load tool's core), by default on one port, so that both
/// tenants' appEndpoints are the same address, as with one app server hosting several functions.
/// </summary>
internal static class HungAppScenario
{
    public static async Task RunAsync(LoadSettings settings, string[] args)
    {
        string Arg(string name, string fallback) => Array.IndexOf(args, name) is var at and >= 0 && at + 1 < args.Length ? args[at + 1] : fallback;
        var hungCount = int.Parse(Arg("--hung", "64"), CultureInfo.InvariantCulture);
        var protocol = Arg("--app-protocol", "http");
        var onePort = Arg("--apps", "one-port") == "one-port";
        var giveUp = TimeSpan.FromMilliseconds(int.Parse(Arg("--give-up-ms", "1000"), CultureInfo.InvariantCulture));

        await using var apps = await AppServer.StartAsync(onePort ? 1 : 2, protocol == "h2c" ? HttpProtocols.Http2 : HttpProtocols.Http1);
        var yaml = $"""
            {Tenant("quiet", apps.Addresses[0], protocol, 64)}
            {Tenant("stuck", apps.Addresses[^1], protocol, hungCount)}
            """;
        await using var runtime = await RuntimeProcess.StartAsync(settings, yaml, []);
        var port = runtime.HttpPort;
        using var quiet = Clients.Create("quiet-token", 64);
        using var stuck = Clients.Create("stuck-token", hungCount + 16);
        HttpRequestMessage Invoke(string app) => new(HttpMethod.Get, $"http://127.0.0.1:{port}/v1.0/invoke/{app}/method/work");

        // Warm up: JIT, connection pools, both tenants.
        await Task.WhenAll(
            OpenLoop.RunAsync(quiet, _ => Invoke("quiet"), settings.QuietRps, TimeSpan.FromSeconds(3), 256, null),
            OpenLoop.RunAsync(stuck, _ => Invoke("stuck"), 50, TimeSpan.FromSeconds(3), 256, null));
        await Task.Delay(500);

        var alone = new Samples();
        var hung = new Samples();
        var stuckOutcomes = new Samples();
        var rounds = new List<(double Alone, double Hung)>();
        for (var round = 0; round < settings.Rounds; round++)
        {
            var aloneRound = new Samples();
            var cpu = runtime.CpuMs;
            await OpenLoop.RunAsync(quiet, _ => Invoke("quiet"), settings.QuietRps, TimeSpan.FromSeconds(settings.PhaseSeconds), 4096, aloneRound);
            var aloneCpu = runtime.CpuMs - cpu;

            // The stuck tenant keeps hungCount calls in its app until the phase ends: each caller gives up after
            // --give-up-ms (0: never) and calls again at once, as a caller with a timeout does.
            apps.Hang();
            using var phaseEnd = new CancellationTokenSource();
            // Callers start spread over one give-up time, so their calls arrive evenly rather than in bursts.
            var held = Enumerable.Range(0, hungCount).Select(i => HoldAsync(stuck, () => Invoke("stuck"), giveUp * i / hungCount, giveUp, stuckOutcomes, phaseEnd.Token)).ToArray();
            await apps.WaitForHungAsync(hungCount - (giveUp > TimeSpan.Zero ? 2 : 0), TimeSpan.FromSeconds(10));
            var hungRound = new Samples();
            cpu = runtime.CpuMs;
            await OpenLoop.RunAsync(quiet, _ => Invoke("quiet"), settings.QuietRps, TimeSpan.FromSeconds(settings.PhaseSeconds), 4096, hungRound);
            var hungCpu = runtime.CpuMs - cpu;
            phaseEnd.Cancel();
            apps.Release();
            await Task.WhenAll(held);
            await Task.Delay(300);

            alone.AddFrom(aloneRound);
            hung.AddFrom(hungRound);
            rounds.Add((aloneRound.Percentile(0.99), hungRound.Percentile(0.99)));
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"round {round + 1}: p99 alone {aloneRound.Percentile(0.99):0.00} ms, with {hungCount} hung {hungRound.Percentile(0.99):0.00} ms; errors {aloneRound.Errors} / {hungRound.Errors}; runtime CPU {aloneCpu:0} / {hungCpu:0} ms"));
        }

        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture,
            $"quiet invokes its own app at {settings.QuietRps} req/s, open loop, latency from the scheduled send time; stuck holds {hungCount} requests hung in its app (appChannel maxConcurrency {hungCount}) in every second phase{(giveUp > TimeSpan.Zero ? $", each of its callers giving up after {giveUp.TotalMilliseconds:0} ms and calling again" : ", held for the whole phase")}. Both apps in one process ({(onePort ? "one port: both appEndpoints the same address" : "two ports")}), app protocol {protocol}. Runtime pinned to core {settings.RuntimeCpu ?? "(none)"}, load tool and apps on the other. {settings.Rounds} rounds of {settings.PhaseSeconds}s alone, then {settings.PhaseSeconds}s with the hung requests; samples pooled per phase.");
        report.AppendLine();
        report.AppendLine("| phase | quiet p50 ms | quiet p90 ms | quiet p99 ms | quiet requests | quiet errors |");
        report.AppendLine("|---|---|---|---|---|---|");
        report.AppendLine(Row("alone", alone));
        report.AppendLine(Row($"{hungCount} hung in the other app", hung));
        report.AppendLine();
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"p99 with the hung requests / alone: **{hung.Percentile(0.99) / alone.Percentile(0.99):0.00}x** pooled; per round: {string.Join(", ", rounds.Select(r => (r.Hung / r.Alone).ToString("0.00x", CultureInfo.InvariantCulture)))}. Stuck tenant's calls: {stuckOutcomes.Requests} made, {stuckOutcomes.Admitted} answered when released, {stuckOutcomes.Errors} given up or failed."));
        Console.WriteLine(report.ToString());
        if (settings.Output is { } output)
        {
            await File.AppendAllTextAsync(output, report.ToString() + Environment.NewLine);
        }
    }

    private static string Row(string name, Samples samples) => string.Create(CultureInfo.InvariantCulture,
        $"| {name} | {samples.Percentile(0.5):0.00} | {samples.Percentile(0.9):0.00} | {samples.Percentile(0.99):0.00} | {samples.Requests} | {samples.Errors} |");

    /// <summary>One caller of the stuck app: calls, gives up after <paramref name="giveUp"/> (never when zero), calls again, until the phase ends.</summary>
    private static async Task HoldAsync(HttpClient client, Func<HttpRequestMessage> request, TimeSpan startAfter, TimeSpan giveUp, Samples outcomes, CancellationToken phaseEnd)
    {
        await Task.Delay(startAfter, CancellationToken.None);
        while (true)
        {
            var status = 0;
            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(phaseEnd);
            if (giveUp > TimeSpan.Zero)
            {
                attempt.CancelAfter(giveUp);
            }
            try
            {
                using var message = request();
                // The phase's end releases the app; only a caller's own timeout cancels the call.
                using var response = await client.SendAsync(message, HttpCompletionOption.ResponseContentRead, giveUp > TimeSpan.Zero ? attempt.Token : CancellationToken.None);
                status = (int)response.StatusCode;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
            }
            outcomes.Add(0, status);
            if (phaseEnd.IsCancellationRequested || status != 0)
            {
                return;
            }
        }
    }

    private static string Tenant(string name, Uri endpoint, string protocol, int maxConcurrency) => $"""
        apiVersion: sharedruntime.io/v1alpha1
        kind: Tenant
        metadata:
          name: {name}
        spec:
          apiToken: {name}-token
          appEndpoint: {endpoint.ToString().TrimEnd('/')}
        {(protocol == "http" ? "" : $"  appProtocol: {protocol}\n")}  limits:
            requestsPerSecond: 100000
            burst: 100000
            maxConcurrency: 1024
            maxQueue: 1024
          appChannel:
            maxConcurrency: {maxConcurrency}
            maxQueue: 64
            timeout: 60s
        ---
        """;

    /// <summary>
    /// Both tenants' apps in this process: answers at once, except that while hanging, calls into the stuck app
    /// (told apart by the runtime's <c>dapr-callee-app-id</c>) wait until released.
    /// </summary>
    private sealed class AppServer : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private volatile bool _hanging;
        private int _hung;
        private TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private AppServer(WebApplication app, Uri[] addresses)
        {
            _app = app;
            Addresses = addresses;
        }

        public Uri[] Addresses { get; }

        public void Hang() => _hanging = true;

        public void Release()
        {
            _hanging = false;
            Interlocked.Exchange(ref _release, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }

        public async Task WaitForHungAsync(int count, TimeSpan timeout)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (Volatile.Read(ref _hung) < count)
            {
                if (clock.Elapsed > timeout)
                {
                    throw new TimeoutException($"only {Volatile.Read(ref _hung)} of {count} calls reached the stuck app");
                }
                await Task.Delay(5);
            }
        }

        public static async Task<AppServer> StartAsync(int ports, HttpProtocols protocols)
        {
            var numbers = RuntimeProcess.FreePorts(ports);
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k =>
            {
                BareKestrel.ConfigureLikeRuntime(k);
                foreach (var port in numbers)
                {
                    k.Listen(IPAddress.Loopback, port, l => l.Protocols = protocols);
                }
            });
            var app = builder.Build();
            AppServer? self = null;
            app.Run(async context =>
            {
                if (self!._hanging && context.Request.Headers["dapr-callee-app-id"] == "stuck")
                {
                    var release = Volatile.Read(ref self._release).Task;
                    Interlocked.Increment(ref self._hung);
                    try
                    {
                        await release.WaitAsync(context.RequestAborted);
                    }
                    finally
                    {
                        Interlocked.Decrement(ref self._hung);
                    }
                }
                context.Response.StatusCode = 200;
                context.Response.ContentLength = BareKestrel.Body.Length;
                await context.Response.Body.WriteAsync(BareKestrel.Body);
            });
            await app.StartAsync();
            self = new AppServer(app, [.. numbers.Select(p => new Uri($"http://127.0.0.1:{p}"))]);
            return self;
        }

        public async ValueTask DisposeAsync()
        {
            Release();
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
