namespace SharedRuntime.Configuration;

/// <summary>
/// Bounds on subscriptions, the same for those read from resources and those an app answers through
/// <c>GET /dapr/subscribe</c>: both come from sources the runtime does not trust with its memory.
/// </summary>
internal static class SubscriptionLimits
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
