namespace SharedRuntime.Configuration;

/// <summary>
/// A Dapr <c>HTTPEndpoint</c> resource (dapr.io/v1alpha1): a service outside the runtime that the apps in its scopes
/// invoke by name (<c>/v1.0/invoke/{name}/method/{path}</c>), sent to <see cref="BaseUrl"/> with <see cref="Headers"/>
/// added. Its destination must still pass the operator's <c>--allowed-invoke-hosts</c>.
/// </summary>
public sealed record HttpEndpointConfig
{
    public const string KindName = "HTTPEndpoint";

    public required string Name { get; init; }

    /// <summary><c>spec.baseUrl</c>: absolute http or https, without query or fragment, and without a trailing slash.</summary>
    public required Uri BaseUrl { get; init; }

    /// <summary><c>spec.headers</c> with their values resolved, added to every call (replacing the caller's header of that name).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; } = [];

    /// <summary>The app-ids that may invoke it; empty: every app (of its namespace in Kubernetes), as in Dapr.</summary>
    public IReadOnlyList<string> Scopes { get; init; } = [];

    /// <summary>The Kubernetes namespace whose apps may invoke it; null for resource files.</summary>
    public string? Namespace { get; init; }

    public required string Source { get; init; }

    /// <summary>Whether the app <paramref name="appId"/> of <paramref name="namespace"/> may invoke this endpoint.</summary>
    public bool IsVisibleTo(string appId, string? @namespace) =>
        ResourceNamespace.Same(Namespace, @namespace) && (Scopes.Count == 0 || Scopes.Contains(appId, StringComparer.Ordinal));
}
