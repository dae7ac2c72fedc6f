using BenchmarkDotNet.Attributes;
using SharedRuntime.Admission;
using SharedRuntime.Configuration;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Benchmarks;

/// <summary>
/// The admission hot path with 10,000 resident tenants: token lookup (SHA-256 of the token, frozen dictionary,
/// constant-time compare), then the tenant's token bucket and bulkhead. Bytes allocated per admitted request is the
/// figure that matters; it must be 0.
/// </summary>
[MemoryDiagnoser]
public class AdmissionBenchmarks
{
    private RuntimeSnapshot _snapshot = null!;
    private string _token = null!;

    [Params(10_000)]
    public int Tenants { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _snapshot = TenantSet.Build(Tenants, TenantLimits.Defaults with { RequestsPerSecond = 1e7, Burst = 10_000_000 });
        _token = TenantSet.Token(Tenants / 2);
    }

    [Benchmark(Baseline = true, Description = "lookup")]
    public TenantContext? Lookup() => _snapshot.FindByToken(_token);

    [Benchmark(Description = "lookup + rate limit + bulkhead")]
    public bool Admit()
    {
        var tenant = _snapshot.FindByToken(_token)!;
        if (tenant.Admission.TryEnter(out _) != RejectionReason.None)
        {
            return false;
        }
        tenant.Admission.Exit();
        return true;
    }

    [Benchmark(Description = "lookup + rejected by rate limit")]
    public bool Reject()
    {
        var tenant = _snapshot.FindByToken(TenantSet.LimitedToken)!;
        return tenant.Admission.TryEnter(out _) == RejectionReason.RateLimited;
    }
}

/// <summary>What 10,000 resident tenants cost: the bytes allocated to build them (contexts, limiters, lookup tables).</summary>
[MemoryDiagnoser]
public class ResidentTenantsBenchmarks
{
    [Params(1_000, 10_000)]
    public int Tenants { get; set; }

    [Benchmark(Baseline = true)]
    public RuntimeSnapshot Build() => TenantSet.Build(Tenants, TenantLimits.Defaults);
}

internal static class TenantSet
{
    public const string LimitedToken = "limited-tenant-token-000000000000";

    public static string Token(int i) => $"tenant-token-{i:D6}-0123456789abcdef0123456789abcdef";

    public static RuntimeSnapshot Build(int count, TenantLimits limits)
    {
        var tenants = new List<TenantContext>(count + 1);
        for (var i = 0; i < count; i++)
        {
            tenants.Add(Tenant($"app-{i}", Token(i), limits));
        }
        var limited = Tenant("limited", LimitedToken, limits with { RequestsPerSecond = 0.001, Burst = 1 });
        limited.Admission.TryEnter(out _);
        tenants.Add(limited);
        return new RuntimeSnapshot(1, tenants, [], ResourceSet.Empty);
    }

    private static TenantContext Tenant(string appId, string token, TenantLimits limits) =>
        new(new TenantConfig { Name = appId, AppId = appId, ApiToken = token, Limits = TenantLimitsConfig.Empty, Source = "bench" }, limits, new TenantState(appId));
}
