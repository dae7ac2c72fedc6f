using System.Globalization;
using System.Text;

namespace SharedRuntime.LoadTest;

/// <summary>
/// Two tenants on one shared Redis state store: the noisy one has limits high enough that its flood reaches the store,
/// so only the store's fair queue stands between it and the quiet tenant. The quiet tenant's latency is measured alone
/// and under the flood, side by side in one run.
/// </summary>
internal static class SharedRedisScenario
{
    public static async Task RunAsync(LoadSettings settings, string redisHost)
    {
        // --noisy-limit 0: limits so high that the whole flood reaches the store; otherwise the runtime's default
        // bulkhead (64 in flight, 128 waiting) with the given rate.
        var unlimited = settings.NoisyLimit <= 0;
        var noisyRate = (unlimited ? 1_000_000 : settings.NoisyLimit).ToString(CultureInfo.InvariantCulture);
        var yaml = $"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: store
            spec:
              type: state.redis
              version: v1
              metadata:
                - name: redisHost
                  value: "{redisHost}"
            ---
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: quiet
            spec:
              apiToken: quiet-token
              limits:
                requestsPerSecond: 1000
                burst: 1000
                maxConcurrency: 64
                maxQueue: 128
            ---
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: noisy
            spec:
              apiToken: noisy-token
              limits:
                requestsPerSecond: {noisyRate}
                burst: {noisyRate}
                maxConcurrency: {(unlimited ? 1024 : 64)}
                maxQueue: {(unlimited ? 2048 : 128)}
            """;
        await using var runtime = await RuntimeProcess.StartAsync(settings, yaml, []);
        var port = runtime.HttpPort;
        using var quiet = Clients.Create("quiet-token", 32);
        using var noisy = Clients.Create("noisy-token", 512);
        await Clients.SaveKeyAsync(quiet, port);
        await Clients.SaveKeyAsync(noisy, port);
        await Task.WhenAll(
            OpenLoop.RunAsync(quiet, port, settings.QuietRps, TimeSpan.FromSeconds(2), 256, null),
            OpenLoop.RunAsync(noisy, port, 1000, TimeSpan.FromSeconds(2), 256, null));

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

        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture,
            $"one state.redis store shared by two tenants; quiet: {settings.QuietRps} req/s; noisy: {settings.FloodRps} req/s, {(unlimited ? "with limits high enough that the whole flood reaches the store" : $"limited to {noisyRate}/s, 64 in flight, 128 waiting")}; {settings.Rounds} rounds of {settings.PhaseSeconds}s alone + {settings.PhaseSeconds}s under flood; request: GET /v1.0/state/store/k");
        report.AppendLine();
        report.AppendLine("| phase | quiet p50 ms | quiet p99 ms | quiet requests | quiet errors | noisy answered | noisy refused (429) | p99 ratio flood/alone |");
        report.AppendLine("|---|---|---|---|---|---|---|---|");
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"| alone | {alone.Percentile(0.5):0.00} | {alone.Percentile(0.99):0.00} | {alone.Requests} | {alone.Errors} | - | - | - |"));
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"| under flood | {flooded.Percentile(0.5):0.00} | {flooded.Percentile(0.99):0.00} | {flooded.Requests} | {flooded.Errors} | {noisyStats.Admitted} | {noisyStats.Refused} | {flooded.Percentile(0.99) / alone.Percentile(0.99):0.00}x |"));
        Console.WriteLine(report.ToString());
        if (settings.Output is { } output)
        {
            await File.WriteAllTextAsync(output, report.ToString());
        }
    }
}
