using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SharedRuntime.AppChannel;
using SharedRuntime.Configuration;
using SharedRuntime.Metrics;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Tests.AppChannel;

/// <summary>
/// The probe loop on fake time, against a real app: only the tenants that enable the check are probed, each once per
/// interval, from one loop; a hung probe fails by its own timeout while the others succeed.
/// </summary>
public sealed class AppHealthProbesTests : IAsyncLifetime
{
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(10);
    private readonly FakeTimeProvider _time = new();
    private DateTimeOffset _start;
    private readonly string _folder = Directory.CreateTempSubdirectory("apphealth-").FullName;
    private readonly ConcurrentDictionary<string, int> _probes = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ServiceProvider _services = null!;
    private RuntimeConfiguration _configuration = null!;
    private TestApp _app = null!;
    private AppHealthProbes? _health;

    public async Task InitializeAsync()
    {
        _app = await TestApp.StartAsync(async context =>
        {
            var path = context.Request.Path.Value ?? "";
            _probes.AddOrUpdate(path, 1, static (_, n) => n + 1);
            if (path.EndsWith("/hang", StringComparison.Ordinal))
            {
                await _release.Task.WaitAsync(context.RequestAborted).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        });
        _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        _configuration = new RuntimeConfiguration([], _services, _time, NullLogger<RuntimeConfiguration>.Instance,
            new RuntimeMetrics(_services.GetRequiredService<IMeterFactory>()), TenantLimits.Defaults)
        {
            DrainTime = TimeSpan.Zero,
        };
    }

    public async Task DisposeAsync()
    {
        _release.TrySetResult();
        if (_health is not null)
        {
            await _health.DisposeAsync();
        }
        await _configuration.DisposeAsync();
        await _services.DisposeAsync();
        await _app.DisposeAsync();
        Directory.Delete(_folder, recursive: true);
    }

    /// <summary><paramref name="tenants"/> tenants with the app behind them; those listed in <paramref name="probed"/> enable the check at /probe/{i}[/hang].</summary>
    private async Task StartAsync(int tenants, IReadOnlyDictionary<int, string> probed)
    {
        var yaml = new StringBuilder();
        for (var i = 0; i < tenants; i++)
        {
            yaml.Append(Resources.Tenant($"app{i}", $"token-{i}", appEndpoint: _app.Address.ToString().TrimEnd('/')));
            if (probed.TryGetValue(i, out var path))
            {
                yaml.Insert(yaml.ToString().LastIndexOf("---", StringComparison.Ordinal),
                    $"  enableAppHealthCheck: true\n  appHealthCheckPath: {path}\n  appHealthProbeInterval: 5s\n  appHealthProbeTimeout: 500ms\n  appHealthThreshold: 1\n");
            }
        }
        await File.WriteAllTextAsync(Path.Combine(_folder, "tenants.yaml"), yaml.ToString());
        await _configuration.StartAsync(new FileResourceSource([_folder], _time, _ => null), CancellationToken.None);
        _start = _time.GetUtcNow();
        _health = new AppHealthProbes(_configuration, _time, NullLogger<AppHealthProbes>.Instance);
        await _health.StartAsync(CancellationToken.None);
    }

    private int Probes(string path) => _probes.GetValueOrDefault(path);

    private Task ProbedAsync(string path, int times) =>
        Eventually.TrueAsync(() => Task.FromResult(Probes(path) >= times), Soon, $"{path} probed {times} times");

    [Fact]
    public async Task OnlyTheTenantsThatEnableTheCheckAreProbedOncePerInterval()
    {
        var probed = Enumerable.Range(0, 10).ToDictionary(i => i * 100, i => $"/probe/{i * 100}");
        await StartAsync(1000, probed);
        Assert.Equal(1000, _configuration.Current.Tenants.Count);

        foreach (var path in probed.Values)
        {
            await ProbedAsync(path, 1);
        }
        await Eventually.TrueAsync(() => Task.FromResult(probed.Keys.All(i => _health!.IsHealthy($"app{i}"))), Soon, "the probed apps are healthy");
        Assert.Equal(probed.Values.Order(), _probes.Keys.Order()); // nothing else was asked
        Assert.True(_health!.IsHealthy("app1")); // not probed: always callable

        // Fake time moves on in small steps (the loop sleeps until the next probe is due) until each app's second probe.
        await Eventually.TrueAsync(() =>
        {
            _time.Advance(TimeSpan.FromMilliseconds(100));
            return Task.FromResult(probed.Values.All(p => Probes(p) >= 2));
        }, Soon, "each probed app probed a second time");
        Assert.True(_time.GetUtcNow() - _start >= TimeSpan.FromSeconds(5)); // not before its interval
        Assert.Equal(10, _probes.Count);
        Assert.All(_probes.Values, n => Assert.Equal(2, n));
    }

    [Fact]
    public async Task AHungProbeFailsByItsOwnTimeoutWhileTheOthersSucceed()
    {
        await StartAsync(3, new Dictionary<int, string> { [0] = "/probe/0/hang", [1] = "/probe/1", [2] = "/probe/2" });
        await ProbedAsync("/probe/0/hang", 1);
        await ProbedAsync("/probe/1", 1);
        await ProbedAsync("/probe/2", 1);
        await Eventually.TrueAsync(() => Task.FromResult(_health!.IsHealthy("app1") && _health.IsHealthy("app2")), Soon, "the others are healthy");
        Assert.False(_health!.IsHealthy("app0")); // not yet answered: unhealthy until a probe succeeds, as in Dapr
        Assert.Equal(1, _health.InFlight);

        _time.Advance(TimeSpan.FromMilliseconds(500));
        await Eventually.TrueAsync(() => Task.FromResult(_health.InFlight == 0), Soon, "the hung probe timed out");
        Assert.Contains("no answer within 500ms", _health.Find("app0")!.Reason);
        Assert.True(_health.IsHealthy("app1"));
        Assert.True(_health.IsHealthy("app2"));
    }
}
