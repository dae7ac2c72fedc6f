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

    public static TenantLimitsConfig Empty { get; } = new();

    /// <summary>These limits with every unset field taken from <paramref name="defaults"/>.</summary>
    public TenantLimits Resolve(TenantLimits defaults)
    {
        var rps = RequestsPerSecond ?? defaults.RequestsPerSecond;
        return new TenantLimits(
            rps,
            Burst ?? (RequestsPerSecond is null ? defaults.Burst : Math.Max(1, (int)Math.Ceiling(rps))),
            MaxConcurrency ?? defaults.MaxConcurrency,
            MaxQueue ?? defaults.MaxQueue,
            MaxRequestBodyBytes ?? defaults.MaxRequestBodyBytes,
            StateMaxKeys ?? defaults.StateMaxKeys,
            StateMaxBytes ?? defaults.StateMaxBytes)
        {
            MaxMemoryBytes = MaxMemoryBytes ?? defaults.MaxMemoryBytes,
        };
    }
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
