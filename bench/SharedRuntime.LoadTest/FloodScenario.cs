using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace SharedRuntime.LoadTest;

/// <summary>
/// What a flood costs the others. Part one: a quiet tenant's p99 alone and under a neighbour's open-loop flood far over
/// its limit, with the runtime's CPU over each phase (from /proc), for per-tenant admission with and without push-back
/// and for one shared limit. Part two: N tenants all flooding closed loop, and Jain's index of what each was served
/// per unit of its limit, once with limits that bind and once with limits above what the core can serve.
/// </summary>
internal static class FloodScenario
{
    private const string QuietToken = "quiet-token";
    private const string NoisyToken = "noisy-token";

    public static async Task RunAsync(LoadSettings settings, string[] args)
    {
        string? Arg(string name) => Array.IndexOf(args, name) is var at and >= 0 && at + 1 < args.Length ? args[at + 1] : null;
        var redis = Arg("--redis");
        var floodConnections = int.Parse(Arg("--flood-connections") ?? "64", CultureInfo.InvariantCulture);
        var tenants = int.Parse(Arg("--tenants") ?? "4", CultureInfo.InvariantCulture);
        var fairnessSeconds = int.Parse(Arg("--fairness-seconds") ?? "8", CultureInfo.InvariantCulture);
        var parts = Arg("--parts") ?? "quiet,fairness";
        var store = redis is null ? "state.in-memory" : "state.redis";

        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"store: {store}{(redis is null ? "" : $" at {redis}")}; runtime pinned to core {settings.RuntimeCpu ?? "(not pinned)"}, load tool on the other; {Environment.ProcessorCount} core(s) seen by the load tool; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; load average before: {LoadAverage()}");
        report.AppendLine();
        if (parts.Contains("quiet", StringComparison.Ordinal))
        {
            await QuietUnderFloodAsync(settings, store, redis, floodConnections, report);
        }
        if (parts.Contains("fairness", StringComparison.Ordinal))
        {
            await AllFloodingAsync(settings, store, redis, tenants, fairnessSeconds, report);
        }
        report.AppendLine(CultureInfo.InvariantCulture, $"load average after: {LoadAverage()}");
        Console.WriteLine(report.ToString());
        if (settings.Output is { } output)
        {
            await File.WriteAllTextAsync(output, report.ToString());
        }
    }

    private static async Task QuietUnderFloodAsync(LoadSettings settings, string store, string? redis, int floodConnections, StringBuilder report)
    {
        var noisyLimit = settings.NoisyLimit;
        report.AppendLine(CultureInfo.InvariantCulture,
            $"### Quiet tenant under a flood\n\nquiet: {settings.QuietRps} GET/s open loop (limit {settings.QuietLimit}/s); noisy: {settings.FloodRps} GET/s open loop on {floodConnections} connections, limit {noisyLimit}/s ({settings.FloodRps / noisyLimit:0}x); {settings.Rounds} rounds of {settings.PhaseSeconds} s alone then {settings.PhaseSeconds} s under the flood, pooled per phase after a 2 s warm-up; latency from the scheduled send time. Runtime CPU: user + system from /proc over each phase; the flood's share is the flood phases' CPU less the alone phases', as % of one core.");
        report.AppendLine();
        report.AppendLine("| admission | quiet p50 alone / flood ms | quiet p99 alone / flood ms | **p99 flood / alone** | quiet errors (flood) | noisy 2xx / 429 / not sent (client queue full) | runtime CPU alone / flood (% of a core) | **CPU on the flood** |");
        report.AppendLine("|---|---|---|---|---|---|---|---|");
        var modes = new (string Name, string[] Args)[]
        {
            ("per-tenant (default: push-back on)", []),
            ("per-tenant, push-back off", ["--pushback-max-delay-ms", "0"]),
            ("shared (one limit for all)", SharedArgs(settings)),
        };
        foreach (var (name, extra) in modes)
        {
            var yaml = Resources(store, redis, [("quiet", QuietToken, settings.QuietLimit, 64, 128), ("noisy", NoisyToken, noisyLimit, 8, 16)]);
            await using var runtime = await RuntimeProcess.StartAsync(settings, yaml, extra);
            var port = runtime.HttpPort;
            using var quiet = Clients.Create(QuietToken, 32);
            using var noisy = Clients.Create(NoisyToken, floodConnections);
            await Clients.SaveKeyAsync(quiet, port);
            await Clients.SaveKeyAsync(noisy, port);
            await Task.WhenAll(
                OpenLoop.RunAsync(quiet, port, settings.QuietRps, TimeSpan.FromSeconds(2), 256, null),
                OpenLoop.RunAsync(noisy, port, Math.Min(noisyLimit, settings.FloodRps), TimeSpan.FromSeconds(2), 256, null));

            var alone = new Samples();
            var flooded = new Samples();
            var noisyStats = new Samples();
            double aloneCpu = 0, floodCpu = 0, aloneSeconds = 0, floodSeconds = 0;
            for (var round = 0; round < settings.Rounds; round++)
            {
                var (cpu, seconds) = await MeasureAsync(runtime, () => OpenLoop.RunAsync(quiet, port, settings.QuietRps, TimeSpan.FromSeconds(settings.PhaseSeconds), 4096, alone));
                aloneCpu += cpu;
                aloneSeconds += seconds;
                (cpu, seconds) = await MeasureAsync(runtime, () => Task.WhenAll(
                    OpenLoop.RunAsync(quiet, port, settings.QuietRps, TimeSpan.FromSeconds(settings.PhaseSeconds), 4096, flooded),
                    OpenLoop.RunAsync(noisy, port, settings.FloodRps, TimeSpan.FromSeconds(settings.PhaseSeconds), 2048, noisyStats)));
                floodCpu += cpu;
                floodSeconds += seconds;
            }
            var aloneShare = aloneCpu / aloneSeconds / 10;
            var floodShare = floodCpu / floodSeconds / 10;
            var notSent = noisyStats.Errors - noisyStats.Refused;
            report.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {alone.Percentile(0.5):0.00} / {flooded.Percentile(0.5):0.00} | {alone.Percentile(0.99):0.00} / {flooded.Percentile(0.99):0.00} | **{flooded.Percentile(0.99) / alone.Percentile(0.99):0.00}x** | {flooded.Errors} of {flooded.Requests} | {noisyStats.Admitted} / {noisyStats.Refused} / {notSent} | {aloneShare:0.0} / {floodShare:0.0} | **{floodShare - aloneShare:0.0}%** |"));
            Console.Error.WriteLine($"{name}: p99 alone {alone.Percentile(0.99):0.00} ms, flood {flooded.Percentile(0.99):0.00} ms; CPU alone {aloneShare:0.0}%, flood {floodShare:0.0}%");
        }
        report.AppendLine();
    }

    /// <summary>
    /// N tenants flood closed loop, each on as many connections as its weight; served answers per tenant over the run,
    /// divided by its limit, give Jain's index (1: every tenant served in proportion to its limit).
    /// </summary>
    private static async Task AllFloodingAsync(LoadSettings settings, string store, string? redis, int count, int seconds, StringBuilder report)
    {
        // Weights 1, 1, 2, 4, ... : the limits. Every tenant floods on the same number of connections.
        var weights = Enumerable.Range(0, count).Select(i => i < 2 ? 1.0 : Math.Pow(2, i - 1)).ToArray();
        report.AppendLine(CultureInfo.InvariantCulture,
            $"### All tenants flooding\n\n{count} tenants with limits in the ratio {string.Join(" : ", weights)}, each flooding closed loop on 32 connections for {seconds} s after a 3 s warm-up. Jain's index over served/limit (1.00: each served in proportion to its limit; 1/N: one tenant took everything).");
        report.AppendLine();
        report.AppendLine("| admission | limits (req/s) | served per tenant (2xx/s) | served / limit | refused (429/s) | runtime CPU (% of a core) | **Jain's index** |");
        report.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var (name, unit, extra) in new (string, double, string[])[]
        {
            ("per-tenant, limits bind", 250, []),
            ("per-tenant, limits above capacity", 10_000, []),
            ("per-tenant, limits bind, push-back off", 250, ["--pushback-max-delay-ms", "0"]),
        })
        {
            var limits = weights.Select(w => w * unit).ToArray();
            var yaml = Resources(store, redis, [.. limits.Select((l, i) => ($"t{i}", $"t{i}-token", l, 1024, 2048))]);
            await using var runtime = await RuntimeProcess.StartAsync(settings, yaml, extra);
            var port = runtime.HttpPort;
            var clients = limits.Select((_, i) => Clients.Create($"t{i}-token", 32)).ToArray();
            try
            {
                await Clients.SaveKeyAsync(clients[0], port);
                for (var i = 1; i < clients.Length; i++)
                {
                    await Clients.SaveKeyAsync(clients[i], port);
                }
                await ClosedLoopAsync(clients, port, TimeSpan.FromSeconds(3));
                var before = runtime.CpuMs;
                var clock = Stopwatch.StartNew();
                var (served, refused) = await ClosedLoopAsync(clients, port, TimeSpan.FromSeconds(seconds));
                var elapsed = clock.Elapsed.TotalSeconds;
                var cpu = (runtime.CpuMs - before) / elapsed / 10;
                var share = served.Select((s, i) => s / elapsed / limits[i]).ToArray();
                var jain = share.Sum() * share.Sum() / (share.Length * share.Sum(x => x * x));
                string Join(IEnumerable<double> values, string format) => string.Join(", ", values.Select(v => v.ToString(format, CultureInfo.InvariantCulture)));
                report.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {Join(limits, "0")} | {Join(served.Select(s => s / elapsed), "0")} | {Join(share, "0.00")} | {Join(refused.Select(s => s / elapsed), "0")} | {cpu:0} | **{jain:0.000}** |"));
                Console.Error.WriteLine($"{name}: Jain {jain:0.000}");
            }
            finally
            {
                foreach (var client in clients)
                {
                    client.Dispose();
                }
            }
        }
        report.AppendLine();
    }

    private static async Task<(long[] Served, long[] Refused)> ClosedLoopAsync(HttpClient[] clients, int port, TimeSpan duration)
    {
        var served = new long[clients.Length];
        var refused = new long[clients.Length];
        using var stop = new CancellationTokenSource(duration);
        var uri = new Uri($"http://127.0.0.1:{port}/v1.0/state/store/k");
        var loops = new List<Task>();
        for (var t = 0; t < clients.Length; t++)
        {
            var tenant = t;
            for (var c = 0; c < 32; c++)
            {
                loops.Add(Task.Run(async () =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        try
                        {
                            using var response = await clients[tenant].GetAsync(uri, stop.Token);
                            await response.Content.LoadIntoBufferAsync(stop.Token);
                            // Counted only when answered inside the window.
                            if (stop.IsCancellationRequested)
                            {
                                break;
                            }
                            if (response.IsSuccessStatusCode)
                            {
                                Interlocked.Increment(ref served[tenant]);
                            }
                            else if ((int)response.StatusCode == 429)
                            {
                                Interlocked.Increment(ref refused[tenant]);
                            }
                        }
                        catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException)
                        {
                        }
                    }
                }));
            }
        }
        await Task.WhenAll(loops);
        return (served, refused);
    }

    private static async Task<(double CpuMs, double Seconds)> MeasureAsync(RuntimeProcess runtime, Func<Task> phase)
    {
        var before = runtime.CpuMs;
        var clock = Stopwatch.StartNew();
        await phase();
        return (runtime.CpuMs - before, clock.Elapsed.TotalSeconds);
    }

    private static string[] SharedArgs(LoadSettings settings)
    {
        var rate = (settings.QuietLimit + settings.NoisyLimit).ToString(CultureInfo.InvariantCulture);
        return ["--admission", "shared", "--default-requests-per-second", rate, "--default-burst", rate, "--default-max-concurrency", "72", "--default-max-queue", "144"];
    }

    private static string Resources(string store, string? redis, IEnumerable<(string AppId, string Token, double Limit, int Concurrency, int Queue)> tenants)
    {
        var yaml = new StringBuilder($"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: store
            spec:
              type: {store}
              version: v1

            """);
        if (redis is not null)
        {
            yaml.Append($"""
                  metadata:
                    - name: redisHost
                      value: "{redis}"

                """);
        }
        foreach (var (appId, token, limit, concurrency, queue) in tenants)
        {
            var rate = limit.ToString(CultureInfo.InvariantCulture);
            yaml.Append($"""
                ---
                apiVersion: sharedruntime.io/v1alpha1
                kind: Tenant
                metadata:
                  name: {appId}
                spec:
                  apiToken:
                    value: {token}
                  limits:
                    requestsPerSecond: {rate}
                    burst: {rate}
                    maxConcurrency: {concurrency}
                    maxQueue: {queue}

                """);
        }
        return yaml.ToString();
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";
}
