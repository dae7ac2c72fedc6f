namespace SharedRuntime.Configuration;

/// <summary>
/// What the cluster's operators allow the Tenants of one namespace (from every <c>TenantLimitPolicy</c> selecting it):
/// a default for each limit a Tenant leaves unset, and a maximum for each limit. A Tenant gets the lesser of what it
/// asks and the maximum; where several policies select a namespace, the least of their values holds.
/// </summary>
public sealed record LimitCeiling(IReadOnlyList<string> Policies, TenantLimitsConfig Defaults, TenantLimitsConfig Maximum)
{
    /// <summary>The limits as <c>spec.limits</c> names them, in the order they are reported.</summary>
    public static IReadOnlyList<string> LimitNames { get; } =
        ["requestsPerSecond", "burst", "maxConcurrency", "maxQueue", "maxRequestBodyBytes", "stateMaxKeys", "stateMaxBytes", "maxMemoryBytes"];

    /// <summary>The limits <paramref name="asked"/> sets above the maximum, each as "name asked → allowed".</summary>
    public IReadOnlyList<string> Clamps(TenantLimitsConfig asked)
    {
        var clamps = new List<string>();
        Check("requestsPerSecond", asked.RequestsPerSecond, Maximum.RequestsPerSecond);
        Check("burst", asked.Burst, Maximum.Burst);
        Check("maxConcurrency", asked.MaxConcurrency, Maximum.MaxConcurrency);
        Check("maxQueue", asked.MaxQueue, Maximum.MaxQueue);
        Check("maxRequestBodyBytes", asked.MaxRequestBodyBytes, Maximum.MaxRequestBodyBytes);
        Check("stateMaxKeys", asked.StateMaxKeys, Maximum.StateMaxKeys);
        Check("stateMaxBytes", asked.StateMaxBytes, Maximum.StateMaxBytes);
        Check("maxMemoryBytes", asked.MaxMemoryBytes, Maximum.MaxMemoryBytes);
        return clamps;

        void Check(string name, double? value, double? maximum)
        {
            if (value is { } v && maximum is { } m && v > m)
            {
                clamps.Add(FormattableString.Invariant($"{name} {v} > {m}"));
            }
        }
    }

    /// <summary>Several policies' ceilings as one: for every limit the least default and the least maximum any of them sets.</summary>
    public static LimitCeiling? Combine(IReadOnlyList<LimitCeiling> ceilings) => ceilings.Count switch
    {
        0 => null,
        1 => ceilings[0],
        _ => new LimitCeiling([.. ceilings.SelectMany(c => c.Policies)], Least(ceilings.Select(c => c.Defaults)), Least(ceilings.Select(c => c.Maximum))),
    };

    private static TenantLimitsConfig Least(IEnumerable<TenantLimitsConfig> all)
    {
        var list = all.ToList();
        return new TenantLimitsConfig
        {
            RequestsPerSecond = Min(list.Select(l => l.RequestsPerSecond)),
            Burst = Min(list.Select(l => l.Burst)),
            MaxConcurrency = Min(list.Select(l => l.MaxConcurrency)),
            MaxQueue = Min(list.Select(l => l.MaxQueue)),
            MaxRequestBodyBytes = Min(list.Select(l => l.MaxRequestBodyBytes)),
            StateMaxKeys = Min(list.Select(l => l.StateMaxKeys)),
            StateMaxBytes = Min(list.Select(l => l.StateMaxBytes)),
            MaxMemoryBytes = Min(list.Select(l => l.MaxMemoryBytes)),
        };
    }

    private static T? Min<T>(IEnumerable<T?> values) where T : struct, IComparable<T>
    {
        T? least = null;
        foreach (var value in values)
        {
            if (value is { } v && (least is not { } l || v.CompareTo(l) < 0))
            {
                least = v;
            }
        }
        return least;
    }
}
