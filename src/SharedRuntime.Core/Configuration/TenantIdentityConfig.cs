namespace SharedRuntime.Configuration;

/// <summary>
/// <c>spec.identity</c> of a Tenant: the pods its token is bound to, in the Tenant's own namespace, by service account,
/// by labels, or both. A request carrying the token is accepted only from the address of a running pod that matches.
/// </summary>
public sealed record TenantIdentityConfig
{
    /// <summary>The Tenant's namespace: only pods of it can match.</summary>
    public required string Namespace { get; init; }

    /// <summary>The pods' service account (<c>serviceAccountName</c>), or null for any.</summary>
    public string? ServiceAccountName { get; init; }

    /// <summary>Labels every matching pod carries (<c>podSelector.matchLabels</c>); empty for any.</summary>
    public IReadOnlyDictionary<string, string> MatchLabels { get; init; } = new Dictionary<string, string>();

    /// <summary>Whether a pod of <paramref name="namespace"/> running as <paramref name="serviceAccount"/> with <paramref name="labels"/> is one of the Tenant's.</summary>
    public bool Matches(string @namespace, string serviceAccount, IReadOnlyDictionary<string, string> labels) =>
        @namespace == Namespace &&
        (ServiceAccountName is null || ServiceAccountName == serviceAccount) &&
        MatchLabels.All(l => labels.TryGetValue(l.Key, out var value) && value == l.Value);

    /// <summary>Parses <c>spec.identity</c>: at least one of serviceAccountName and podSelector.matchLabels.</summary>
    internal static TenantIdentityConfig? Parse(ResourceNode node, string @namespace)
    {
        if (node.IsMissing)
        {
            return null;
        }
        foreach (var (key, child) in node.Entries())
        {
            if (key is not ("serviceAccountName" or "podSelector"))
            {
                throw child.Error("unknown field; spec.identity has serviceAccountName and podSelector");
            }
        }
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, child) in node["podSelector"]["matchLabels"].Entries())
        {
            labels[key] = child.RequiredString();
        }
        var serviceAccount = node["serviceAccountName"].AsString();
        if (serviceAccount is null && labels.Count == 0)
        {
            throw node.Error("binds the token to no pod: give serviceAccountName, podSelector.matchLabels, or both");
        }
        return new TenantIdentityConfig { Namespace = @namespace, ServiceAccountName = serviceAccount, MatchLabels = labels };
    }
}
