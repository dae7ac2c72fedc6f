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
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    /// <summary>App-ids this subscription delivers to; empty means every app.</summary>
    public IReadOnlyList<string> Scopes { get; init; } = [];

    public required string Source { get; init; }

    public bool AppliesTo(string appId) => Scopes.Count == 0 || Scopes.Contains(appId, StringComparer.Ordinal);
}

/// <summary>Where an event goes: the first rule whose <c>match</c> holds, else <see cref="Default"/>.</summary>
public sealed record SubscriptionRoutes(IReadOnlyList<RouteRule> Rules, string? Default);

/// <summary>One routing rule: <see cref="Match"/> is a CEL-like expression over the event (empty = always).</summary>
public sealed record RouteRule(string Match, string Path);

/// <summary>
/// Bounds on subscriptions, the same for those read from resources and those an app answers through
/// <c>GET /dapr/subscribe</c>: both come from sources the runtime does not trust with its memory.
/// </summary>
public static class SubscriptionLimits
{
    /// <summary>Most subscriptions one app has from resources, and again most it may answer through <c>/dapr/subscribe</c>.</summary>
    public const int MaxPerApp = 100;

    /// <summary>Longest pubsub name, topic and dead-letter topic, in characters.</summary>
    public const int MaxNameLength = 256;

    /// <summary>Longest route path, in characters.</summary>
    public const int MaxPathLength = 1024;

    /// <summary>Most routing rules in one subscription.</summary>
    public const int MaxRules = 32;

    /// <summary>Most metadata entries in one subscription.</summary>
    public const int MaxMetadataEntries = 32;

    /// <summary>Longest metadata name or value, in characters.</summary>
    public const int MaxMetadataLength = 1024;

    /// <summary>What about <paramref name="subscription"/> is over a bound, or null when nothing is. Match expressions are checked by <see cref="RouteMatch.Parse"/>.</summary>
    public static string? Problem(SubscriptionConfig subscription)
    {
        if (subscription.PubsubName.Length > MaxNameLength || subscription.Topic.Length > MaxNameLength || subscription.DeadLetterTopic?.Length > MaxNameLength)
        {
            return $"a pubsub name, topic or dead-letter topic is longer than {MaxNameLength} characters";
        }
        if (subscription.Routes.Rules.Count > MaxRules)
        {
            return $"it has {subscription.Routes.Rules.Count} routing rules, more than the {MaxRules} allowed";
        }
        if (subscription.Routes.Default?.Length > MaxPathLength || subscription.Routes.Rules.Any(r => r.Path.Length > MaxPathLength))
        {
            return $"a route path is longer than {MaxPathLength} characters";
        }
        if (subscription.Metadata.Count > MaxMetadataEntries)
        {
            return $"it has {subscription.Metadata.Count} metadata entries, more than the {MaxMetadataEntries} allowed";
        }
        if (subscription.Metadata.Any(m => m.Key.Length > MaxMetadataLength || m.Value.Length > MaxMetadataLength))
        {
            return $"a metadata name or value is longer than {MaxMetadataLength} characters";
        }
        return null;
    }
}
