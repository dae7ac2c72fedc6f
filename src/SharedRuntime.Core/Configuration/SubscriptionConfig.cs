namespace SharedRuntime.Configuration;

/// <summary>
/// A Dapr <c>Subscription</c> (dapr.io/v2alpha1 with routes, or v1alpha1 with one route), or one entry an app
/// returned from <c>GET /dapr/subscribe</c>.
/// </summary>
public sealed record SubscriptionConfig
{
    public const string KindName = "Subscription";

    public required string Name { get; init; }
    public required string PubsubName { get; init; }
    public required string Topic { get; init; }
    public required SubscriptionRoutes Routes { get; init; }
    public string? DeadLetterTopic { get; init; }

    /// <summary>Dapr's <c>bulkSubscribe</c>: deliver events in batches; null when not enabled.</summary>
    public BulkSubscribeConfig? BulkSubscribe { get; init; }

    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    /// <summary>App-ids this subscription delivers to; empty means every app.</summary>
    public IReadOnlyList<string> Scopes { get; init; } = [];

    public required string Source { get; init; }

    /// <summary>The Kubernetes namespace whose apps it delivers to; null for resource files and an app's own subscriptions.</summary>
    public string? Namespace { get; init; }

    public bool AppliesTo(string appId) => Scopes.Count == 0 || Scopes.Contains(appId, StringComparer.Ordinal);

    /// <summary>Dapr's rule: a Subscription delivers only to apps of its own namespace, then only to those its scopes name.</summary>
    public bool AppliesTo(TenantConfig tenant) => ResourceNamespace.Same(Namespace, tenant.Namespace) && AppliesTo(tenant.AppId);
}

/// <summary>Where an event goes: the first rule whose <c>match</c> holds, else <see cref="Default"/>.</summary>
public sealed record SubscriptionRoutes(IReadOnlyList<RouteRule> Rules, string? Default);

/// <summary>One routing rule: <see cref="Match"/> is a CEL-like expression over the event (empty = always).</summary>
public sealed record RouteRule(string Match, string Path);

/// <summary>
/// Dapr's <c>bulkSubscribe</c> (enabled): up to <see cref="MaxMessagesCount"/> events in one request to the app, sent
/// at the latest <see cref="MaxAwaitDuration"/> after the first of them arrived.
/// </summary>
public sealed record BulkSubscribeConfig(int MaxMessagesCount, TimeSpan MaxAwaitDuration)
{
    /// <summary>Dapr's default <c>maxMessagesCount</c>.</summary>
    public const int DefaultMaxMessagesCount = 100;

    /// <summary>The most <c>maxMessagesCount</c> may be: every event of a batch is held in memory until the app answers.</summary>
    public const int MaxMessagesCountCeiling = 1000;

    /// <summary>Dapr's default <c>maxAwaitDurationMs</c>.</summary>
    public const int DefaultMaxAwaitDurationMs = 1000;

    /// <summary>The most <c>maxAwaitDurationMs</c> may be.</summary>
    public const int MaxAwaitDurationMsCeiling = 60_000;

    /// <summary>The bulk settings, or null when <paramref name="enabled"/> is not true; what is out of bounds is said in <paramref name="problem"/>.</summary>
    public static BulkSubscribeConfig? Of(bool? enabled, long? maxMessagesCount, long? maxAwaitDurationMs, out string? problem)
    {
        problem = null;
        if (enabled != true)
        {
            return null;
        }
        if (maxMessagesCount is < 1 or > MaxMessagesCountCeiling)
        {
            problem = $"bulkSubscribe.maxMessagesCount must be from 1 to {MaxMessagesCountCeiling}";
            return null;
        }
        if (maxAwaitDurationMs is < 1 or > MaxAwaitDurationMsCeiling)
        {
            problem = $"bulkSubscribe.maxAwaitDurationMs must be from 1 to {MaxAwaitDurationMsCeiling}";
            return null;
        }
        return new BulkSubscribeConfig((int)(maxMessagesCount ?? DefaultMaxMessagesCount), TimeSpan.FromMilliseconds(maxAwaitDurationMs ?? DefaultMaxAwaitDurationMs));
    }
}
