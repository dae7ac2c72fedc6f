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
        var aboveCapacityOnly = args.Contains("--above-capacity-only");
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
            await AllFloodingAsync(settings, store, redis, tenants, fairnessSeconds, aboveCapacityOnly, report);
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
            $"### Quiet tenant under a flood\n\nquiet: {settings.QuietRps} GET/s open loop (limit {settings.QuietLimit}/s); noisy: {settings.FloodRps} GET/s open loop on {floodConnections} connections, limit {noisyLimit}/s ({settings.FloodRps / noisyLimit:0}x); {settings.Rounds} rounds of {settings.PhaseSeconds} s alone then {settings.PhaseSeconds} s under the flood, pooled per phase after an 8 s warm-up (the flood's included); latency from the scheduled send time. Runtime CPU: user + system from /proc over each phase's scheduled window, as % of one core; the flood phases' figure includes the quiet tenant's 200/s and bounds what the flood cost; the last column subtracts the alone phases' figure (on a busy machine both move by several points). At the end of each flood phase the flood's client drops what it still queues.");
        report.AppendLine();
        report.AppendLine("| admission | quiet p50 alone / flood ms | quiet p99 alone / flood ms | **p99 flood / alone** | quiet errors (flood) | noisy 2xx / 429 / not sent or dropped by its client | runtime CPU alone / **flood phase** (% of a core) | flood less alone |");
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
            // Warm-up (JIT tiers, connection pools): both tenants within their limits, then the flood itself, so that
            // neither phase measured below pays for compiling the other's path.
            await Task.WhenAll(
                OpenLoop.RunAsync(quiet, port, settings.QuietRps, TimeSpan.FromSeconds(2), 256, null),
                OpenLoop.RunAsync(noisy, port, Math.Min(noisyLimit, settings.FloodRps), TimeSpan.FromSeconds(2), 256, null));
            await Task.WhenAll(
                OpenLoop.RunAsync(quiet, port, settings.QuietRps, TimeSpan.FromSeconds(4), 256, null),
                OpenLoop.RunAsync(noisy, port, settings.FloodRps, TimeSpan.FromSeconds(4), 2048, null));
            await OpenLoop.RunAsync(quiet, port, settings.QuietRps, TimeSpan.FromSeconds(2), 256, null);

            var alone = new Samples();
            var flooded = new Samples();
            var noisyStats = new Samples();
            double aloneCpu = 0, floodCpu = 0, aloneSeconds = 0, floodSeconds = 0;
            for (var round = 0; round < settings.Rounds; round++)
            {
                var phase = TimeSpan.FromSeconds(settings.PhaseSeconds);
                var (cpu, seconds) = await MeasureAsync(runtime, phase, OpenLoop.RunAsync(quiet, port, settings.QuietRps, phase, 4096, alone));
                aloneCpu += cpu;
                aloneSeconds += seconds;
                var flood = OpenLoop.RunAsync(noisy, port, settings.FloodRps, phase, 2048, noisyStats);
                (cpu, seconds) = await MeasureAsync(runtime, phase, OpenLoop.RunAsync(quiet, port, settings.QuietRps, phase, 4096, flooded));
                // The flood's client gives up what it still holds when its phase ends (requests queued behind its
                // held connections), so that the next phase is the quiet tenant alone.
                noisy.CancelPendingRequests();
                await flood;
                floodCpu += cpu;
                floodSeconds += seconds;
            }
            var aloneShare = aloneCpu / aloneSeconds / 10;
            var floodShare = floodCpu / floodSeconds / 10;
            var notSent = noisyStats.Errors - noisyStats.Refused;
            report.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {alone.Percentile(0.5):0.00} / {flooded.Percentile(0.5):0.00} | {alone.Percentile(0.99):0.00} / {flooded.Percentile(0.99):0.00} | **{flooded.Percentile(0.99) / alone.Percentile(0.99):0.00}x** | {flooded.Errors} of {flooded.Requests} | {noisyStats.Admitted} / {noisyStats.Refused} / {notSent} | {aloneShare:0.0} / **{floodShare:0.0}** | {floodShare - aloneShare:0.0} |"));
            Console.Error.WriteLine($"{name}: p99 alone {alone.Percentile(0.99):0.00} ms, flood {flooded.Percentile(0.99):0.00} ms; CPU alone {aloneShare:0.0}%, flood {floodShare:0.0}%");
        }
        report.AppendLine();
    }

    /// <summary>
    /// N tenants flood closed loop, each on as many connections as its weight; served answers per tenant over the run,
    /// divided by its limit, give Jain's index (1: every tenant served in proportion to its limit).
    /// </summary>
    private static async Task AllFloodingAsync(LoadSettings settings, string store, string? redis, int count, int seconds, bool aboveCapacityOnly, StringBuilder report)
    {
        // Weights 1, 1, 2, 4, ... : the limits. Every tenant floods on the same number of connections.
        var weights = Enumerable.Range(0, count).Select(i => i < 2 ? 1.0 : Math.Pow(2, i - 1)).ToArray();
        report.AppendLine(CultureInfo.InvariantCulture,
            $"### All tenants flooding\n\n{count} tenants with limits in the ratio {string.Join(" : ", weights)}, each flooding closed loop on 32 connections for {seconds} s after a 3 s warm-up ({(WrkPath() is null ? "HttpClient in the load tool" : "one wrk process per tenant")}). Jain's index over served/limit (1.00: each served in proportion to its limit; 1/N: one tenant took everything).");
        report.AppendLine();
        report.AppendLine("| admission | limits (req/s) | served per tenant (2xx/s) | served / limit | refused (429/s) | runtime CPU (% of a core) | **Jain's index** |");
        report.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var (name, unit, extra) in new (string, double, string[])[]
        {
            ("per-tenant, limits bind", 250, []),
            ("per-tenant, limits above capacity, fair share on (the default)", 10_000, ["--fair-share", "true"]),
            ("per-tenant, limits above capacity, fair share off", 10_000, ["--fair-share", "false"]),
            ("per-tenant, limits above capacity, fair share on, push-back off", 10_000, ["--fair-share", "true", "--pushback-max-delay-ms", "0"]),
            ("per-tenant, limits bind, push-back off", 250, ["--pushback-max-delay-ms", "0"]),
        })
        {
            if (aboveCapacityOnly && !name.Contains("above", StringComparison.Ordinal))
            {
                continue;
            }
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
        if (WrkPath() is { } wrk)
        {
            return await WrkAsync(wrk, clients.Length, port, duration);
        }
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

    /// <summary>
    /// One wrk process per tenant (32 connections, its token): far cheaper per request than HttpClient, so that the
    /// tenants together can send more than the runtime's core serves.
    /// </summary>
    private static async Task<(long[] Served, long[] Refused)> WrkAsync(string wrk, int tenants, int port, TimeSpan duration)
    {
        var runs = Enumerable.Range(0, tenants).Select(async i =>
        {
            var start = new ProcessStartInfo(wrk) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in new[] { "-t1", "-c32", $"-d{(int)duration.TotalSeconds}s", "-H", $"dapr-api-token: t{i}-token", $"http://127.0.0.1:{port}/v1.0/state/store/k" })
            {
                start.ArgumentList.Add(arg);
            }
            using var process = Process.Start(start)!;
            var output = await process.StandardOutput.ReadToEndAsync();
            await process.WaitForExitAsync();
            long Number(string pattern) => System.Text.RegularExpressions.Regex.Match(output, pattern) is { Success: true } m ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
            var total = Number(@"(\d+) requests in");
            var non2xx = Number(@"Non-2xx or 3xx responses: (\d+)");
            // The runtime answers only 200 or 429 here.
            return (Served: total - non2xx, Refused: non2xx);
        }).ToArray();
        var results = await Task.WhenAll(runs);
        return ([.. results.Select(r => r.Served)], [.. results.Select(r => r.Refused)]);
    }

    private static string? WrkPath() =>
        Environment.GetEnvironmentVariable("PATH")?.Split(':').Select(d => Path.Combine(d, "wrk")).FirstOrDefault(File.Exists);

    /// <summary>The runtime's CPU over the phase's scheduled window (then waits for the phase's last answers).</summary>
    private static async Task<(double CpuMs, double Seconds)> MeasureAsync(RuntimeProcess runtime, TimeSpan window, Task phase)
    {
        var before = runtime.CpuMs;
        var clock = Stopwatch.StartNew();
        await Task.Delay(window);
        var cpu = runtime.CpuMs - before;
        var seconds = clock.Elapsed.TotalSeconds;
        await phase;
        return (cpu, seconds);
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
