namespace SharedRuntime.Configuration;

/// <summary>Parses a Tenant's spec.appChannel: how the runtime calls the app.</summary>
internal static class AppChannelParser
{
    private static readonly string[] KnownAppChannelFields =
        ["maxConcurrency", "maxQueue", "timeout", "discoverSubscriptions", "subscriptionRefreshInterval", "appApiToken", "breakAfterFailures", "breakDuration"];

    public static AppChannelConfig Parse(ResourceNode node, Func<string, string?> environment, SecretResolver? secrets)
    {
        if (node.IsMissing)
        {
            return AppChannelConfig.Default;
        }
        foreach (var (key, child) in node.Entries())
        {
            if (!KnownAppChannelFields.Contains(key))
            {
                throw child.Error($"unknown field; known fields are {string.Join(", ", KnownAppChannelFields)}");
            }
        }
        var defaults = AppChannelConfig.Default;
        return new AppChannelConfig
        {
            MaxConcurrency = (int?)node["maxConcurrency"].AsInt64(1, 100_000) ?? defaults.MaxConcurrency,
            MaxQueue = (int?)node["maxQueue"].AsInt64(0, 1_000_000) ?? defaults.MaxQueue,
            Timeout = ResourceRules.Positive(node["timeout"]) ?? defaults.Timeout,
            DiscoverSubscriptions = node["discoverSubscriptions"].AsBool() ?? defaults.DiscoverSubscriptions,
            SubscriptionRefreshInterval = RefreshInterval(node["subscriptionRefreshInterval"]),
            AppApiToken = node["appApiToken"].IsMissing ? null : TenantParser.ParseToken(node["appApiToken"], environment, secrets),
            BreakAfterFailures = (int?)node["breakAfterFailures"].AsInt64(0, 1_000_000) ?? defaults.BreakAfterFailures,
            BreakDuration = ResourceRules.Positive(node["breakDuration"]) ?? defaults.BreakDuration,
        };
    }

    /// <summary>The shortest <c>subscriptionRefreshInterval</c>: each refresh is a request to the app.</summary>
    public static readonly TimeSpan MinRefreshInterval = TimeSpan.FromSeconds(10);

    private static TimeSpan? RefreshInterval(ResourceNode node)
    {
        var value = node.AsDuration();
        if (value is { } v && v < MinRefreshInterval)
        {
            throw node.Error($"must be at least {MinRefreshInterval.TotalSeconds}s (each refresh is a request to the app)");
        }
        return value;
    }
}
