using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;

namespace SharedRuntime.LoadTest;

/// <summary>
/// How fast the runtime becomes usable: process start to the first healthz 204, over several starts of each build given
/// (<c>--runtime-dll</c> and, for a side-by-side comparison, <c>--compare-dll</c>), started in turn with a baseline
/// (<c>--baseline-dll</c>, an empty Kestrel app answering the same healthz) when one is given, each median reported as a
/// multiple of the baseline's; then, on one running runtime, how long from a new Tenant file being written to the first
/// 200 answered with that tenant's token.
/// </summary>
internal static class StartupScenario
{
    private const string Resources = """
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
          name: orders
        spec:
          apiToken:
            value: orders-token
        """;

    public static async Task RunAsync(LoadSettings settings, string[] args)
    {
        var starts = (int)double.Parse(Option(args, "--starts") ?? "20", CultureInfo.InvariantCulture);
        var builds = new List<(string Label, string Dll)>();
        var baseline = Option(args, "--baseline-dll");
        if (baseline is not null)
        {
            builds.Add((Option(args, "--baseline-label") ?? "baseline", baseline));
        }
        builds.Add((Option(args, "--label") ?? "build", settings.RuntimeDll));
        if (Option(args, "--compare-dll") is { } other)
        {
            builds.Add((Option(args, "--compare-label") ?? "compare", other));
        }
        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"process start (a `.dll` through `dotnet`, a native executable as it is) to the first `GET /v1.0/healthz` 204, polled every 2 ms; {starts} starts per build, taken in turn; started {(settings.RuntimeCpu is null ? "not pinned" : $"pinned to core {settings.RuntimeCpu}")}");
        report.AppendLine();
        report.AppendLine(baseline is null ? "| build | min ms | median ms | p90 ms | max ms | median CPU ms |" : "| build | min ms | median ms | p90 ms | max ms | median CPU ms | median / baseline | CPU / baseline |");
        report.AppendLine(baseline is null ? "|---|---|---|---|---|---|" : "|---|---|---|---|---|---|---|---|");
        var samples = builds.Select(_ => new List<double>()).ToList();
        // CPU time (user + system) used up to the first 204: what a busy machine does not inflate as it does the wall time.
        var cpu = builds.Select(_ => new List<double>()).ToList();
        for (var i = 0; i < starts; i++)
        {
            for (var b = 0; b < builds.Count; b++)
            {
                await using var runtime = await RuntimeProcess.StartAsync(settings with { RuntimeDll = builds[b].Dll }, Resources, [], pollMs: 2);
                samples[b].Add(runtime.ReadyMs);
                cpu[b].Add(runtime.CpuMs);
            }
        }
        var baselineMedian = Percentile(samples[0].Order().ToList(), 0.5);
        var baselineCpu = Percentile(cpu[0].Order().ToList(), 0.5);
        for (var b = 0; b < builds.Count; b++)
        {
            var sorted = samples[b].Order().ToList();
            var cpuMedian = Percentile(cpu[b].Order().ToList(), 0.5);
            var ratio = baseline is null ? "" : string.Create(CultureInfo.InvariantCulture, $" {Percentile(sorted, 0.5) / baselineMedian:0.00}x | {cpuMedian / baselineCpu:0.00}x |");
            report.AppendLine(CultureInfo.InvariantCulture,
                $"| {builds[b].Label} | {sorted[0]:0} | {Percentile(sorted, 0.5):0} | {Percentile(sorted, 0.9):0} | {sorted[^1]:0} | {cpuMedian:0} |{ratio}");
        }
        report.AppendLine();
        report.Append(await NewTenantAsync(settings with { RuntimeDll = builds[^1].Dll }, starts));

        Console.WriteLine(report.ToString());
        if (settings.Output is { } output)
        {
            await File.WriteAllTextAsync(output, report.ToString());
        }
    }

    /// <summary>Writes one new Tenant file at a time into the watched folder and times its first 200.</summary>
    private static async Task<string> NewTenantAsync(LoadSettings settings, int count)
    {
        await using var runtime = await RuntimeProcess.StartAsync(settings, Resources, [], pollMs: 2);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var times = new List<double>();
        for (var i = 0; i < count; i++)
        {
            var token = $"new-token-{i}";
            var yaml = $"""
                apiVersion: sharedruntime.io/v1alpha1
                kind: Tenant
                metadata:
                  name: new-app-{i}
                spec:
                  apiToken:
                    value: {token}
                """;
            var temp = Path.Combine(runtime.Folder, $".new-app-{i}.tmp");
            await File.WriteAllTextAsync(temp, yaml);
            var clock = Stopwatch.StartNew();
            File.Move(temp, Path.Combine(runtime.Folder, $"new-app-{i}.yaml"));
            while (true)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{runtime.HttpPort}/v1.0/metadata");
                request.Headers.Add("dapr-api-token", token);
                using var response = await client.SendAsync(request);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    break;
                }
                if (clock.Elapsed > TimeSpan.FromSeconds(10))
                {
                    throw new TimeoutException($"tenant new-app-{i} not usable within 10 s");
                }
                await Task.Delay(2);
            }
            times.Add(clock.Elapsed.TotalMilliseconds);
        }
        var sorted = times.Order().ToList();
        return string.Create(CultureInfo.InvariantCulture,
            $"""
            new tenant usable: Tenant file renamed into the watched folder to the first `GET /v1.0/metadata` 200 with its token, polled every 2 ms; {count} tenants added one after another to a running runtime

            | min ms | median ms | p90 ms | max ms |
            |---|---|---|---|
            | {sorted[0]:0} | {Percentile(sorted, 0.5):0} | {Percentile(sorted, 0.9):0} | {sorted[^1]:0} |

            """);
    }

    private static double Percentile(List<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

    private static string? Option(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
