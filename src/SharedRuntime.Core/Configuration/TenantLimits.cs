namespace SharedRuntime.Configuration;

/// <summary>Per-tenant limits as written in the resource; null fields take the runtime-wide defaults.</summary>
public sealed record TenantLimitsConfig
{
    public double? RequestsPerSecond { get; init; }
    public int? Burst { get; init; }
    public int? MaxConcurrency { get; init; }
    public int? MaxQueue { get; init; }
    public long? MaxRequestBodyBytes { get; init; }
    public long? StateMaxKeys { get; init; }
    public long? StateMaxBytes { get; init; }
    public long? MaxMemoryBytes { get; init; }

    /// <summary>Whether the rate and concurrency limits hold per runtime (the default) or for the whole cluster.</summary>
    public LimitScope Scope { get; init; }

    public static TenantLimitsConfig Empty { get; } = new();

    /// <summary>
    /// These limits with every unset field taken from the operator's <paramref name="ceiling"/> defaults, else from
    /// <paramref name="defaults"/>, and none above the ceiling's maximum. With <see cref="LimitScope.Cluster"/>
    /// the rate, burst, concurrency and queue are this runtime's share of <paramref name="replicas"/> ready runtimes:
    /// the limit divided by their number, rounded up for the whole-number limits (at least 1 for burst and
    /// concurrency), so the cluster admits at most a request per replica more than the limit says.
    /// </summary>
    public TenantLimits Resolve(TenantLimits defaults, int replicas = 1, LimitCeiling? ceiling = null)
    {
        var given = ceiling?.Defaults ?? Empty;
        var maximum = ceiling?.Maximum ?? Empty;
        var askedRate = RequestsPerSecond ?? given.RequestsPerSecond;
        var rps = Math.Min(askedRate ?? defaults.RequestsPerSecond, maximum.RequestsPerSecond ?? double.MaxValue);
        var limits = new TenantLimits(
            rps,
            Math.Min(Burst ?? given.Burst ?? (askedRate is null ? defaults.Burst : Math.Max(1, (int)Math.Ceiling(rps))), maximum.Burst ?? int.MaxValue),
            Math.Min(MaxConcurrency ?? given.MaxConcurrency ?? defaults.MaxConcurrency, maximum.MaxConcurrency ?? int.MaxValue),
            Math.Min(MaxQueue ?? given.MaxQueue ?? defaults.MaxQueue, maximum.MaxQueue ?? int.MaxValue),
            Math.Min(MaxRequestBodyBytes ?? given.MaxRequestBodyBytes ?? defaults.MaxRequestBodyBytes, maximum.MaxRequestBodyBytes ?? long.MaxValue),
            Math.Min(StateMaxKeys ?? given.StateMaxKeys ?? defaults.StateMaxKeys, maximum.StateMaxKeys ?? long.MaxValue),
            Math.Min(StateMaxBytes ?? given.StateMaxBytes ?? defaults.StateMaxBytes, maximum.StateMaxBytes ?? long.MaxValue))
        {
            MaxMemoryBytes = Math.Min(MaxMemoryBytes ?? given.MaxMemoryBytes ?? defaults.MaxMemoryBytes, maximum.MaxMemoryBytes ?? long.MaxValue),
        };
        if (Scope != LimitScope.Cluster || replicas <= 1)
        {
            return limits;
        }
        return limits with
        {
            RequestsPerSecond = Math.Max(MinimumRate, limits.RequestsPerSecond / replicas),
            Burst = Share(limits.Burst, replicas, 1),
            MaxConcurrency = Share(limits.MaxConcurrency, replicas, 1),
            MaxQueue = Share(limits.MaxQueue, replicas, 0),
        };
    }

    /// <summary>The smallest rate a Tenant may declare; a share never goes below it.</summary>
    public const double MinimumRate = 0.001;

    private static int Share(int limit, int replicas, int floor) => Math.Max(floor, (int)Math.Ceiling((double)limit / replicas));
}

/// <summary>What a Tenant's rate and concurrency limits apply to (<c>spec.limits.scope</c>).</summary>
public enum LimitScope
{
    /// <summary>Every runtime enforces the limits on its own (<c>runtime</c>, the default).</summary>
    Runtime,

    /// <summary>The limits are for the whole cluster; each runtime takes the limit divided by the ready replicas (<c>cluster</c>).</summary>
    Cluster,
}

/// <summary>Effective limits of one tenant.</summary>
public sealed record TenantLimits(
    double RequestsPerSecond,
    int Burst,
    int MaxConcurrency,
    int MaxQueue,
    long MaxRequestBodyBytes,
    long StateMaxKeys,
    long StateMaxBytes)
{
    /// <summary>
    /// Bytes the runtime may hold at once for this tenant's requests in flight: bodies read whole, answers being
    /// built, bodies kept for retries. Charged together with the node's ceiling shared by all tenants.
    /// </summary>
    public long MaxMemoryBytes { get; init; } = DefaultMaxMemoryBytes;

    public const long DefaultMaxMemoryBytes = 64L * 1024 * 1024;

    /// <summary>Runtime-wide defaults when neither the tenant nor the command line sets a limit.</summary>
    public static TenantLimits Defaults { get; } = new(
        RequestsPerSecond: 1000,
        Burst: 2000,
        MaxConcurrency: 64,
        MaxQueue: 128,
        MaxRequestBodyBytes: 4 * 1024 * 1024,
        StateMaxKeys: 100_000,
        StateMaxBytes: 100 * 1024 * 1024);
}
