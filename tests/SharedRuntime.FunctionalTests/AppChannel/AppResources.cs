namespace SharedRuntime.FunctionalTests.AppChannel;

/// <summary>Resource YAML for app channel tests: tenants with an app behind them, subscriptions, resiliency.</summary>
internal static class AppResources
{
    /// <summary>A tenant whose app is at <paramref name="appEndpoint"/>; <paramref name="extraSpec"/> is YAML under spec (two-space indented lines).</summary>
    public static string Tenant(string appId, string token, Uri? appEndpoint, string extraSpec = "") =>
        $"""
        apiVersion: sharedruntime.io/v1alpha1
        kind: Tenant
        metadata:
          name: {appId}
        spec:
          apiToken:
            value: "{token}"
        {(appEndpoint is null ? "" : $"  appEndpoint: {appEndpoint.ToString().TrimEnd('/')}\n")}{Indent(extraSpec, "  ")}
        ---

        """;

    public static string Subscription(string name, string pubsub, string topic, string routes, string? deadLetterTopic = null, IReadOnlyList<string>? scopes = null) =>
        $"""
        apiVersion: dapr.io/v2alpha1
        kind: Subscription
        metadata:
          name: {name}
        spec:
          pubsubname: {pubsub}
          topic: {topic}
          routes:
        {Indent(routes, "    ")}
        {(deadLetterTopic is null ? "" : $"  deadLetterTopic: {deadLetterTopic}\n")}{(scopes is null ? "" : "scopes:\n" + string.Concat(scopes.Select(s => $"  - {s}\n")))}
        ---

        """;

    public static string InMemoryPubSub(string name, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var all = new Dictionary<string, string> { ["redeliveryDelay"] = "50ms" };
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>())
        {
            all[key] = value;
        }
        return Resources.Component(name, "pubsub.in-memory", all);
    }

    private static string Indent(string text, string prefix) =>
        string.Join("\n", text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => prefix + l.TrimEnd()));
}
