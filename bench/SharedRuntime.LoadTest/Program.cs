using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using SharedRuntime.LoadTest;

// A noisy neighbour floods the runtime while a quiet tenant sends a steady rate; the quiet tenant's latency is
// measured alone and under the flood, with per-tenant isolation and with one shared limit for all tenants.
// Run it through bench/load/run.sh, which pins the runtime and this tool to different cores.
if (args.Length is 2 or 4 && args[0] == "--serve-bare")
{
    // --serve-bare PORT [--h2c-port PORT]: HTTP/1.1 on the first, HTTP/2 without TLS on the second.
    await BareKestrel.ServeAsync(int.Parse(args[1], CultureInfo.InvariantCulture),
        args.Length == 4 && args[2] == "--h2c-port" ? int.Parse(args[3], CultureInfo.InvariantCulture) : null);
    return;
}
if (args.Length == 2 && args[0] == "--serve-bare-grpc")
{
    await BareGrpc.ServeAsync(int.Parse(args[1], CultureInfo.InvariantCulture));
    return;
}
if (args.Length == 2 && args[0] == "--serve-grpc-app")
{
    await GrpcProxyScenario.ServeAppAsync(int.Parse(args[1], CultureInfo.InvariantCulture));
    return;
}
if (args.Length >= 4 && args[0] == "--grpc-proxy")
{
    ThreadPool.SetMinThreads(64, 64);
    Environment.ExitCode = await GrpcProxyScenario.RunAsync(args);
    return;
}
if (args.Length >= 4 && args[0] == "--grpc-get")
{
    ThreadPool.SetMinThreads(64, 64);
    Environment.ExitCode = await GrpcGetScenario.RunAsync(args);
    return;
}
var settings = LoadSettings.Parse(args);
ThreadPool.SetMinThreads(64, 64);
if (settings.Scenario == "startup")
{
    await StartupScenario.RunAsync(settings, args);
    return;
}
if (settings.Scenario == "hung-app")
{
    await HungAppScenario.RunAsync(settings, args);
    return;
}
if (settings.Scenario == "state-write-cost")
{
    string? Arg(string name) => Array.IndexOf(args, name) is var at and >= 0 && at + 1 < args.Length ? args[at + 1] : null;
    var note = Arg("--crowded-note") ?? "keys of other apps";
    if (Arg("--postgresql") is { } connectionString)
    {
        await StateWriteCostScenario.RunAsync(settings, "postgresql", connectionString, note);
    }
    else
    {
        await StateWriteCostScenario.RunAsync(settings, "redis", Arg("--redis") ?? throw new ArgumentException("--redis HOST:PORT or --postgresql CONNECTION-STRING is required for --scenario state-write-cost"), note);
    }
    return;
}
if (settings.Scenario == "flood")
{
    await FloodScenario.RunAsync(settings, args);
    return;
}
if (settings.Scenario == "shared-redis")
{
    var redis = Array.IndexOf(args, "--redis") is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : throw new ArgumentException("--redis HOST:PORT is required for --scenario shared-redis");
    await SharedRedisScenario.RunAsync(settings, redis);
    return;
}

var report = new StringBuilder();
var notes = new List<string>();
report.AppendLine(CultureInfo.InvariantCulture, $"quiet tenant: {settings.QuietRps} req/s open loop (limit {settings.QuietLimit}/s); noisy tenant: {settings.FloodRps} req/s open loop (limit {settings.NoisyLimit}/s, {settings.FloodRps / settings.NoisyLimit:0}x); {settings.Rounds} rounds of {settings.PhaseSeconds}s alone + {settings.PhaseSeconds}s under flood; request: GET /v1.0/state/store/k");
report.AppendLine();
report.AppendLine("| admission | phase | quiet p50 ms | quiet p99 ms | quiet requests | quiet errors | noisy admitted | noisy refused (429) | p99 ratio flood/alone |");
report.AppendLine("|---|---|---|---|---|---|---|---|---|");

foreach (var shared in new[] { false, true })
{
    await using var runtime = await RuntimeProcess.StartAsync(settings, shared);
    using var quiet = Clients.Create("quiet-token", 32);
    using var noisy = Clients.Create("noisy-token", 128);
    var port = runtime.HttpPort;
    await Clients.SaveKeyAsync(quiet, port);
    await Clients.SaveKeyAsync(noisy, port);

    // Warm up: JIT, connection pools, both tenants.
    await Task.WhenAll(
        OpenLoop.RunAsync(quiet, port, settings.QuietRps, TimeSpan.FromSeconds(2), 256, null),
        OpenLoop.RunAsync(noisy, port, settings.NoisyLimit, TimeSpan.FromSeconds(2), 256, null));

    var alone = new Samples();
    var flooded = new Samples();
    var noisyStats = new Samples();
    for (var round = 0; round < settings.Rounds; round++)
    {
        await OpenLoop.RunAsync(quiet, port, settings.QuietRps, TimeSpan.FromSeconds(settings.PhaseSeconds), 4096, alone);
        await Task.WhenAll(
            OpenLoop.RunAsync(quiet, port, settings.QuietRps, TimeSpan.FromSeconds(settings.PhaseSeconds), 4096, flooded),
            OpenLoop.RunAsync(noisy, port, settings.FloodRps, TimeSpan.FromSeconds(settings.PhaseSeconds), 2048, noisyStats));
    }
    var mode = shared ? "shared (one limit for all)" : "per-tenant";
    var ratio = flooded.Percentile(0.99) / alone.Percentile(0.99);
    report.AppendLine(alone.Row(mode, "alone", null, null));
    report.AppendLine(flooded.Row(mode, "under flood", noisyStats, ratio));
    Console.Error.WriteLine($"{mode}: ready in {runtime.ReadyMs:0} ms; alone p99 {alone.Percentile(0.99):0.00} ms, flood p99 {flooded.Percentile(0.99):0.00} ms, quiet errors under flood {flooded.Errors}");
    notes.Add(string.Create(CultureInfo.InvariantCulture, $"- {mode}: runtime process start to healthz 204 in {runtime.ReadyMs:0} ms (includes `dotnet` host start-up)"));
}
report.AppendLine();
notes.ForEach(n => report.AppendLine(n));

Console.WriteLine(report.ToString());
if (settings.Output is { } output)
{
    await File.WriteAllTextAsync(output, report.ToString());
}

namespace SharedRuntime.LoadTest
{
    internal sealed record LoadSettings(string RuntimeDll, int Rounds, int PhaseSeconds, double QuietRps, double QuietLimit, double FloodRps, double NoisyLimit, string? RuntimeCpu, string? Output, string Scenario = "noisy-neighbour")
    {
        public static LoadSettings Parse(string[] args)
        {
            string Get(string name, string fallback)
            {
                var i = Array.IndexOf(args, name);
                return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
            }
            double Number(string name, double fallback) => double.Parse(Get(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
            var dll = Get("--runtime-dll", "");
            if (dll.Length == 0 || !File.Exists(dll))
            {
                throw new ArgumentException("--runtime-dll PATH (the built shared-runtime.dll) is required");
            }
            return new LoadSettings(dll, (int)Number("--rounds", 4), (int)Number("--phase-seconds", 3), Number("--quiet-rps", 200), Number("--quiet-limit", 1000),
                Number("--flood-rps", 5000), Number("--noisy-limit", 50), args.Contains("--no-pin") ? null : Get("--runtime-cpu", "0"), args.Contains("--out") ? Get("--out", "") : null,
                Get("--scenario", "noisy-neighbour"));
        }
    }

    internal sealed class RuntimeProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly string _folder;

        private RuntimeProcess(Process process, string folder, int httpPort, double readyMs)
        {
            _process = process;
            _folder = folder;
            HttpPort = httpPort;
            ReadyMs = readyMs;
        }

        public int HttpPort { get; }
        public double ReadyMs { get; }

        /// <summary>The runtime process's CPU time so far (user + system, from /proc), in ms.</summary>
        public double CpuMs
        {
            get
            {
                var fields = File.ReadAllText($"/proc/{_process.Id}/stat").Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) * 10.0;
            }
        }

        /// <summary>The watched resource folder.</summary>
        public string Folder => _folder;

        public static Task<RuntimeProcess> StartAsync(LoadSettings settings, bool shared)
        {
            var extra = new List<string>();
            if (shared)
            {
                // An unisolated runtime: one limit for the node, sized as the sum of what the tenants are entitled to.
                var rate = (settings.QuietLimit + settings.NoisyLimit).ToString(CultureInfo.InvariantCulture);
                extra.AddRange(["--admission", "shared", "--default-requests-per-second", rate, "--default-burst", rate, "--default-max-concurrency", "72", "--default-max-queue", "144"]);
            }
            return StartAsync(settings, $"""
                apiVersion: dapr.io/v1alpha1
                kind: Component
                metadata:
                  name: store
                spec:
                  type: state.in-memory
                  version: v1
                ---
                apiVersion: sharedruntime.io/v1alpha1
                kind: Tenant
                metadata:
                  name: quiet
                spec:
                  apiToken:
                    value: quiet-token
                  limits:
                    requestsPerSecond: {settings.QuietLimit.ToString(CultureInfo.InvariantCulture)}
                    burst: {settings.QuietLimit.ToString(CultureInfo.InvariantCulture)}
                    maxConcurrency: 64
                    maxQueue: 128
                ---
                apiVersion: sharedruntime.io/v1alpha1
                kind: Tenant
                metadata:
                  name: noisy
                spec:
                  apiToken:
                    value: noisy-token
                  limits:
                    requestsPerSecond: {settings.NoisyLimit.ToString(CultureInfo.InvariantCulture)}
                    burst: {settings.NoisyLimit.ToString(CultureInfo.InvariantCulture)}
                    maxConcurrency: 8
                    maxQueue: 16
                """, extra);
        }

        /// <summary>Starts the runtime on free ports with <paramref name="yaml"/> as its only resource file and waits until it is ready.</summary>
        public static async Task<RuntimeProcess> StartAsync(LoadSettings settings, string yaml, IEnumerable<string> extraArgs, int pollMs = 5)
        {
            var folder = Directory.CreateTempSubdirectory("sharedruntime-load-").FullName;
            await File.WriteAllTextAsync(Path.Combine(folder, "resources.yaml"), yaml);
            var ports = FreePorts(3);
            // A .dll runs on the dotnet host; anything else is a native executable (a NativeAOT publish), run as it is.
            var command = new List<string>();
            if (settings.RuntimeCpu is not null)
            {
                command.AddRange(["taskset", "-c", settings.RuntimeCpu]);
            }
            if (settings.RuntimeDll.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
            {
                command.Add("dotnet");
            }
            command.AddRange([settings.RuntimeDll, "--resources-path", folder, "--dapr-http-port", $"{ports[0]}", "--dapr-grpc-port", $"{ports[1]}", "--metrics-port", $"{ports[2]}", "--log-level", "error"]);
            command.AddRange(extraArgs);
            var start = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in command.Skip(1))
            {
                start.ArgumentList.Add(arg);
            }
            var clock = Stopwatch.StartNew();
            var process = Process.Start(start)!;
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { Console.Error.WriteLine($"runtime: {e.Data}"); } };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
            while (true)
            {
                if (process.HasExited)
                {
                    throw new InvalidOperationException($"the runtime exited with {process.ExitCode}");
                }
                try
                {
                    if ((await probe.GetAsync($"http://127.0.0.1:{ports[0]}/v1.0/healthz")).StatusCode == HttpStatusCode.NoContent)
                    {
                        break;
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    // Not listening yet, or (on a busy machine) not answering within the probe's timeout.
                }
                if (clock.Elapsed > TimeSpan.FromSeconds(30))
                {
                    throw new TimeoutException("the runtime did not become ready within 30 s");
                }
                await Task.Delay(pollMs);
            }
            return new RuntimeProcess(process, folder, ports[0], clock.Elapsed.TotalMilliseconds);
        }

        internal static int[] FreePorts(int count)
        {
            var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
            listeners.ForEach(l => l.Start());
            var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
            listeners.ForEach(l => l.Stop());
            return ports;
        }

        public async ValueTask DisposeAsync()
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
            _process.Dispose();
            Directory.Delete(_folder, recursive: true);
        }
    }

    internal static class Clients
    {
        public static HttpClient Create(string token, int connections)
        {
            var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = connections, PooledConnectionLifetime = Timeout.InfiniteTimeSpan })
            {
                Timeout = TimeSpan.FromSeconds(10),
            };
            client.DefaultRequestHeaders.Add("dapr-api-token", token);
            return client;
        }

        public static async Task SaveKeyAsync(HttpClient client, int port)
        {
            using var content = new StringContent("""[{"key":"k","value":{"order":42,"items":["a","b","c"]}}]""", Encoding.UTF8, "application/json");
            var response = await client.PostAsync($"http://127.0.0.1:{port}/v1.0/state/store", content);
            response.EnsureSuccessStatusCode();
        }
    }

    /// <summary>Latency samples (ms from the scheduled send time) and status counts.</summary>
    internal sealed class Samples
    {
        private readonly List<double> _latencies = [];
        public int Requests { get; private set; }
        public int Errors { get; private set; }
        public int Refused { get; private set; }
        public int Admitted { get; private set; }

        public void Add(double latencyMs, int status)
        {
            lock (_latencies)
            {
                Requests++;
                _latencies.Add(latencyMs);
                if (status is >= 200 and < 300)
                {
                    Admitted++;
                }
                else if (status == 429)
                {
                    Refused++;
                    Errors++;
                }
                else
                {
                    Errors++;
                }
            }
        }

        public void Reset()
        {
            lock (_latencies)
            {
                _latencies.Clear();
                Requests = Errors = Refused = Admitted = 0;
            }
        }

        /// <summary>Adds another set's samples and counts to this one.</summary>
        public void AddFrom(Samples other)
        {
            lock (other._latencies)
            {
                lock (_latencies)
                {
                    _latencies.AddRange(other._latencies);
                    Requests += other.Requests;
                    Errors += other.Errors;
                    Refused += other.Refused;
                    Admitted += other.Admitted;
                }
            }
        }

        public double Percentile(double p)
        {
            lock (_latencies)
            {
                if (_latencies.Count == 0)
                {
                    return double.NaN;
                }
                var sorted = _latencies.Order().ToArray();
                return sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
            }
        }

        public string Row(string mode, string phase, Samples? noisy, double? ratio) =>
            string.Create(CultureInfo.InvariantCulture,
                $"| {mode} | {phase} | {Percentile(0.5):0.00} | {Percentile(0.99):0.00} | {Requests} | {Errors} | {(noisy is null ? "-" : noisy.Admitted.ToString(CultureInfo.InvariantCulture))} | {(noisy is null ? "-" : noisy.Refused.ToString(CultureInfo.InvariantCulture))} | {(ratio is null ? "-" : ratio.Value.ToString("0.00x", CultureInfo.InvariantCulture))} |");
    }

    /// <summary>
    /// Sends on a fixed schedule whatever the answers do (open loop) and counts latency from the scheduled time, so a
    /// stall shows as latency instead of as fewer requests.
    /// </summary>
    internal static class OpenLoop
    {
        public static Task RunAsync(HttpClient client, int port, double rps, TimeSpan duration, int maxOutstanding, Samples? samples) =>
            RunAsync(client, _ => new HttpRequestMessage(HttpMethod.Get, new Uri($"http://127.0.0.1:{port}/v1.0/state/store/k")), rps, duration, maxOutstanding, samples);

        /// <summary>Sends the request <paramref name="create"/> makes (given its sequence number) at <paramref name="rps"/>.</summary>
        public static async Task RunAsync(HttpClient client, Func<long, HttpRequestMessage> create, double rps, TimeSpan duration, int maxOutstanding, Samples? samples)
        {
            var start = Stopwatch.GetTimestamp();
            var end = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);
            var outstanding = 0;
            var pending = new List<Task>();
            for (long n = 0; ; n++)
            {
                var due = start + (long)(n * Stopwatch.Frequency / rps);
                if (due >= end)
                {
                    break;
                }
                while (Stopwatch.GetTimestamp() < due)
                {
                    var wait = (due - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency;
                    if (wait >= 2)
                    {
                        await Task.Delay(1);
                    }
                    else
                    {
                        Thread.Yield();
                    }
                }
                if (Volatile.Read(ref outstanding) >= maxOutstanding)
                {
                    samples?.Add(duration.TotalMilliseconds, 0);
                    continue;
                }
                Interlocked.Increment(ref outstanding);
                pending.Add(SendAsync(client, create(n), due, samples, () => Interlocked.Decrement(ref outstanding)));
            }
            await Task.WhenAll(pending);
        }

        private static async Task SendAsync(HttpClient client, HttpRequestMessage request, long due, Samples? samples, Action done)
        {
            var status = 0;
            try
            {
                using (request)
                using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead))
                {
                    status = (int)response.StatusCode;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                status = 0;
            }
            finally
            {
                done();
            }
            samples?.Add(Stopwatch.GetElapsedTime(due).TotalMilliseconds, status);
        }
    }
}
