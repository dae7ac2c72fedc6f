using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace SharedRuntime.LoadTest;

/// <summary>
/// What a state write costs against a read, and whether it grows with other apps' data: one tenant, closed loop on
/// 16 connections, against two stores of one Redis or PostgreSQL server. <c>empty</c> holds only the tenant's keys;
/// <c>crowded</c> also holds the keys of other apps that bench/load/state-write-cost.sh put there. Phases (get empty, save empty, save crowded, get crowded) alternate round by round and are pooled per phase.
/// </summary>
internal static class StateWriteCostScenario
{
    private const int Connections = 16;
    private const int KeysPerWorker = 64;

    /// <summary>
    /// <paramref name="backend"/> is <c>redis</c> (<paramref name="target"/> HOST:PORT; <c>crowded</c> is database 1) or
    /// <c>postgresql</c> (<paramref name="target"/> a connection string; <c>crowded</c> is table <c>state_crowded</c>).
    /// </summary>
    public static async Task RunAsync(LoadSettings settings, string backend, string target, string crowdedNote)
    {
        string Component(string name, bool crowded) => backend == "postgresql"
            ? $"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: {name}
            spec:
              type: state.postgresql
              version: v1
              metadata:
                - name: connectionString
                  value: "{target}"
                - name: tableName
                  value: "state_{name}"
            """
            : $"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: {name}
            spec:
              type: state.redis
              version: v1
              metadata:
                - name: redisHost
                  value: "{target}"
                - name: redisDB
                  value: "{(crowded ? 1 : 0)}"
            """;
        var yaml = $"""
            {Component("empty", false)}
            ---
            {Component("crowded", true)}
            ---
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: writer
            spec:
              apiToken: writer-token
              limits:
                requestsPerSecond: 1000000
                burst: 1000000
                maxConcurrency: 1024
                maxQueue: 2048
            """;
        await using var runtime = await RuntimeProcess.StartAsync(settings, yaml, []);
        var port = runtime.HttpPort;
        using var client = Clients.Create("writer-token", Connections);

        // The first write to each store seeds the tenant's usage there (one scan of that database): timed once.
        var seeding = new Dictionary<string, double>();
        foreach (var store in new[] { "empty", "crowded" })
        {
            var started = Stopwatch.GetTimestamp();
            using var response = await client.SendAsync(Save(port, store, 0, 0));
            response.EnsureSuccessStatusCode();
            seeding[store] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        }
        (string Name, string Store, bool IsSave)[] phases = [("get, empty database", "empty", false), ("save, empty database", "empty", true),
            ("save, other apps' data", "crowded", true), ("get, other apps' data", "crowded", false)];
        foreach (var (_, store, isSave) in phases)
        {
            await ClosedLoopAsync(client, port, store, isSave, TimeSpan.FromSeconds(1), null);
        }
        var results = phases.ToDictionary(p => p.Name, _ => new Samples());
        // CPU time each phase cost the runtime, the database server's processes and this load tool, to tell which one
        // a phase's rate is bound by (each process's user + system time, from /proc).
        var server = backend == "postgresql" ? "postgres" : "redis-server";
        var cpu = phases.ToDictionary(p => p.Name, _ => new double[3]);
        for (var round = 0; round < settings.Rounds; round++)
        {
            foreach (var (name, store, isSave) in phases)
            {
                var before = (runtime.CpuMs, ServerCpuMs(server), LoadToolCpuMs());
                await ClosedLoopAsync(client, port, store, isSave, TimeSpan.FromSeconds(settings.PhaseSeconds), results[name]);
                cpu[name][0] += runtime.CpuMs - before.Item1;
                cpu[name][1] += ServerCpuMs(server) - before.Item2;
                cpu[name][2] += LoadToolCpuMs() - before.Item3;
            }
        }

        double Rate(string name) => results[name].Admitted / (double)(settings.Rounds * settings.PhaseSeconds);
        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture,
            $"one tenant, closed loop on {Connections} connections (HTTP/1.1), runtime pinned to core 0, load tool and {backend} server on core 1; two state.{backend} stores on one server: `empty` and `crowded` ({(backend == "postgresql" ? "table state_crowded" : "database 1")}, {crowdedNote}); phases alternate, {settings.Rounds} rounds of {settings.PhaseSeconds}s each, pooled; save: POST /v1.0/state/{{store}} of one key ({KeysPerWorker} keys per connection, round robin, ~50-byte JSON value); get: GET /v1.0/state/{{store}}/k");
        report.AppendLine();
        report.AppendLine($"| phase | req/s | p50 ms | p99 ms | requests | errors | runtime CPU µs/req | {server} CPU µs/req | load tool CPU µs/req | runtime core busy | core 1 busy |");
        report.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        var phaseMs = settings.Rounds * settings.PhaseSeconds * 1000.0;
        foreach (var (name, _, _) in phases)
        {
            var s = results[name];
            var c = cpu[name];
            double PerRequest(double ms) => s.Requests == 0 ? 0 : ms * 1000 / s.Requests;
            report.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {Rate(name):0} | {s.Percentile(0.5):0.00} | {s.Percentile(0.99):0.00} | {s.Requests} | {s.Errors} | {PerRequest(c[0]):0} | {PerRequest(c[1]):0} | {PerRequest(c[2]):0} | {c[0] / phaseMs:P0} | {(c[1] + c[2]) / phaseMs:P0} |"));
        }
        report.AppendLine();
        report.AppendLine(string.Create(CultureInfo.InvariantCulture, $"- save / get, empty database: **{Rate(phases[1].Name) / Rate(phases[0].Name):0.00}x** (target >= 0.5x)"));
        report.AppendLine(string.Create(CultureInfo.InvariantCulture, $"- save with other apps' data / save on the empty database: **{Rate(phases[2].Name) / Rate(phases[1].Name):0.00}x** (target >= 0.8x)"));
        report.AppendLine(string.Create(CultureInfo.InvariantCulture, $"- first save of the tenant in each store (seeds its usage by one count of its keys): empty {seeding["empty"]:0.0} ms, crowded {seeding["crowded"]:0.0} ms"));
        report.AppendLine(string.Create(CultureInfo.InvariantCulture, $"- runtime process start to healthz 204 in {runtime.ReadyMs:0} ms"));
        Console.WriteLine(report.ToString());
        if (settings.Output is { } output)
        {
            await File.WriteAllTextAsync(output, report.ToString());
        }
    }

    /// <summary>CPU time (user + system, ms) of every running process named <paramref name="name"/>: the database server's, all its backends included.</summary>
    private static double ServerCpuMs(string name)
    {
        long ticks = 0;
        foreach (var folder in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(folder), out _))
            {
                continue;
            }
            try
            {
                var stat = File.ReadAllText(Path.Combine(folder, "stat"));
                var open = stat.IndexOf('(', StringComparison.Ordinal);
                var close = stat.LastIndexOf(')');
                if (stat.AsSpan(open + 1, close - open - 1).SequenceEqual(name))
                {
                    var fields = stat[(close + 2)..].Split(' ');
                    ticks += long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
                }
            }
            catch (IOException)
            {
                // The process ended meanwhile.
            }
        }
        return ticks * 10.0;
    }

    private static double LoadToolCpuMs() => Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds;

    private static HttpRequestMessage Save(int port, string store, int worker, long n) =>
        new(HttpMethod.Post, $"http://127.0.0.1:{port}/v1.0/state/{store}")
        {
            Content = new StringContent(string.Create(CultureInfo.InvariantCulture, $$$"""[{"key":"w{{{worker}}}-{{{n % KeysPerWorker}}}","value":{"order":{{{n}}},"items":["a","b","c"]}}]"""), Encoding.UTF8, "application/json"),
        };

    private static async Task ClosedLoopAsync(HttpClient client, int port, string store, bool isSave, TimeSpan duration, Samples? samples)
    {
        var end = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        await Task.WhenAll(Enumerable.Range(0, Connections).Select(async worker =>
        {
            for (long n = 0; Stopwatch.GetTimestamp() < end; n++)
            {
                using var request = isSave ? Save(port, store, worker, n) : new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{port}/v1.0/state/{store}/w{worker}-0");
                var started = Stopwatch.GetTimestamp();
                int status;
                try
                {
                    using var response = await client.SendAsync(request);
                    await response.Content.ReadAsByteArrayAsync();
                    status = (int)response.StatusCode;
                }
                catch (HttpRequestException)
                {
                    status = 0;
                }
                samples?.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds, status);
            }
        }));
    }
}
