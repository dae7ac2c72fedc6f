using System.Net;
using Microsoft.Extensions.DependencyInjection;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>Resource files change while the runtime serves: tenants and limits follow, requests keep flowing.</summary>
public sealed class HotReloadTests
{
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task ATenantFileThatAppearsChangesAndDisappearsTakesEffectWithoutARestart()
    {
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string>
        {
            ["components.yaml"] = Resources.Component("store", "state.in-memory"),
            ["orders.yaml"] = Resources.Tenant("orders", "orders-token"),
        });
        var orders = runtime.Client("orders-token");
        await StatusAsync(await orders.PostAsync("/v1.0/state/store", Json("""[{"key":"kept","value":1}]""")), HttpStatusCode.NoContent);
        var newcomer = runtime.Client("new-token");
        await ErrorAsync(await newcomer.GetAsync("/v1.0/metadata"), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");

        await runtime.WriteResourceAsync("new.yaml", Resources.Tenant("newcomer", "new-token"));
        await Eventually.TrueAsync(async () => (await newcomer.GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK, Soon);

        await runtime.WriteResourceAsync("new.yaml", Resources.Tenant("newcomer", "new-token", "requestsPerSecond: 1\nburst: 1"));
        await Eventually.TrueAsync(async () => (await newcomer.GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.TooManyRequests, Soon);

        runtime.DeleteResource("new.yaml");
        await Eventually.TrueAsync(async () => (await newcomer.GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.Unauthorized, Soon);

        // The in-memory store was not rebuilt by the unrelated changes.
        Assert.Equal("1", await orders.GetStringAsync("/v1.0/state/store/kept"));
    }

    [Fact]
    public async Task ABadComponentFileIsRefusedAndTheLastGoodConfigurationStays()
    {
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string>
        {
            ["orders.yaml"] = Resources.Tenant("orders", "orders-token"),
        });
        var generation = runtime.Configuration.Current.Generation;
        await runtime.WriteResourceAsync("other.yaml", Resources.Tenant("other", "other-token") + BadComponent);
        await Eventually.TrueAsync(() => Task.FromResult(runtime.Configuration.RefusedReloads > 0), TimeSpan.FromSeconds(5));

        // The set with the bad component is refused as a whole: even the good tenant beside it is not applied.
        Assert.Contains("other.yaml", runtime.Configuration.LastReloadError);
        Assert.Contains("spec.type", runtime.Configuration.LastReloadError);
        Assert.Equal(generation, runtime.Configuration.Current.Generation);
        await ErrorAsync(await runtime.Client("other-token").GetAsync("/v1.0/metadata"), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
        await StatusAsync(await runtime.Client("orders-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);

        await runtime.WriteResourceAsync("other.yaml", Resources.Tenant("other", "other-token"));
        await runtime.WriteResourceAsync("orders.yaml", Resources.Tenant("orders", "rotated-token"));
        await Eventually.TrueAsync(async () => (await runtime.Client("rotated-token").GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK, Soon);
        await StatusAsync(await runtime.Client("other-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        await ErrorAsync(await runtime.Client("orders-token").GetAsync("/v1.0/metadata"), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
    }

    [Fact]
    public async Task ABadTenantIsUnusableWhileTheTenantsBesideItApply()
    {
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string>
        {
            ["orders.yaml"] = Resources.Tenant("orders", "orders-token"),
        });
        await runtime.WriteResourceAsync("other.yaml", Resources.Tenant("other", "other-token") + Resources.Tenant("broken", "broken-token", "burst: none") +
            Resources.Tenant("thief", "orders-token"));
        await Eventually.TrueAsync(async () => (await runtime.Client("other-token").GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK, Soon);

        var refused = runtime.Configuration.Current.Resources.RejectedTenants;
        Assert.Equal([("Tenant/broken", "spec.limits.burst"), ("Tenant/thief", "spec.apiToken")], refused.Select(e => (e.Document, e.Field)));
        Assert.All(refused, e => Assert.EndsWith("other.yaml", e.File));
        Assert.Equal(0, runtime.Configuration.RefusedReloads);
        await ErrorAsync(await runtime.Client("broken-token").GetAsync("/v1.0/metadata"), HttpStatusCode.Unauthorized, "ERR_TENANT_UNAUTHENTICATED");
        // The tenant that already held the token keeps it.
        await StatusAsync(await runtime.Client("orders-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        // The gauge of this runtime's own meter (other runtimes of this test process publish a meter of the same name,
        // so the shared Prometheus exporter of an in-process test cannot tell them apart).
        Assert.Equal(2, ReadGauge(runtime, "sharedruntime.config.refused_tenants"));

        await runtime.WriteResourceAsync("other.yaml", Resources.Tenant("other", "other-token") + Resources.Tenant("broken", "broken-token", "burst: 5"));
        await Eventually.TrueAsync(async () => (await runtime.Client("broken-token").GetAsync("/v1.0/metadata")).StatusCode == HttpStatusCode.OK, Soon);
        Assert.Empty(runtime.Configuration.Current.Resources.RejectedTenants);
    }

    [Fact]
    public async Task ABadComponentAtStartUpStopsTheRuntimeWithTheFileDocumentAndField()
    {
        var ex = await Assert.ThrowsAsync<SharedRuntime.Configuration.ResourceException>(() =>
            TestRuntime.StartAsync(new Dictionary<string, string> { ["broken.yaml"] = Resources.Tenant("orders", "t") + BadComponent }));
        Assert.EndsWith("broken.yaml", ex.File);
        Assert.Equal("Component/store", ex.Document);
        Assert.Equal("spec.type", ex.Field);
    }

    [Fact]
    public async Task ABadTenantAtStartUpLeavesTheOtherTenantsServing()
    {
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string>
        {
            ["broken.yaml"] = Resources.Tenant("broken", "broken-token", "maxConcurrency: -5"),
            ["orders.yaml"] = Resources.Tenant("orders", "orders-token"),
        });
        await StatusAsync(await runtime.Client("orders-token").GetAsync("/v1.0/metadata"), HttpStatusCode.OK);
        var refused = Assert.Single(runtime.Configuration.Current.Resources.RejectedTenants);
        Assert.EndsWith("broken.yaml", refused.File);
        Assert.Equal("Tenant/broken", refused.Document);
        Assert.Equal("spec.limits.maxConcurrency", refused.Field);
    }

    private const string BadComponent = """
        apiVersion: dapr.io/v1alpha1
        kind: Component
        metadata:
          name: store
        spec:
          version: v1

        """;

    [Fact]
    public async Task RequestsInFlightDuringReloadsDoNotFail()
    {
        await using var runtime = await TestRuntime.StartAsync(new Dictionary<string, string>
        {
            ["components.yaml"] = Resources.Component("store", "state.in-memory"),
            ["orders.yaml"] = Resources.Tenant("orders", "orders-token"),
        });
        var client = runtime.Client("orders-token");
        using var stop = new CancellationTokenSource();
        var failures = new List<string>();
        var sent = 0;
        var load = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var response = await client.PostAsync("/v1.0/state/store", Json($$"""[{"key":"k{{sent % 10}}","value":{{sent}}}]"""));
                sent++;
                if (response.StatusCode != HttpStatusCode.NoContent)
                {
                    failures.Add($"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                }
            }
        });
        // Reloads start once requests flow, and go on (five at least) until enough requests were sent during them: a
        // reload takes a few tens of milliseconds, less than a first request on a busy machine.
        await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref sent) > 0), TimeSpan.FromSeconds(30));
        for (var i = 0; i < 5 || (Volatile.Read(ref sent) <= 10 && i < 500); i++)
        {
            var generation = runtime.Configuration.Current.Generation;
            await runtime.WriteResourceAsync("orders.yaml", Resources.Tenant("orders", "orders-token", $"maxConcurrency: {10 + i}"));
            await runtime.WaitForConfigurationAsync(s => s.Generation > generation);
        }
        stop.Cancel();
        await load;
        Assert.True(sent > 10, $"only {sent} requests were sent");
        Assert.Empty(failures);
    }

    private static long ReadGauge(TestRuntime runtime, string name)
    {
        var factory = runtime.App.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        long? value = null;
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Name == name && ReferenceEquals(instrument.Meter.Scope, factory))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<int>((_, measurement, _, _) => value = measurement);
        listener.SetMeasurementEventCallback<long>((_, measurement, _, _) => value = measurement);
        listener.Start();
        listener.RecordObservableInstruments();
        return value ?? throw new InvalidOperationException($"the runtime publishes no {name}");
    }
}
