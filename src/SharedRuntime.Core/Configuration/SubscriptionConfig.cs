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
