namespace SharedRuntime.Configuration;

/// <summary>
/// A Dapr <c>Configuration</c> resource (dapr.io/v1alpha1), named by a Tenant's <c>spec.config</c>. SharedRuntime reads
/// its <c>accessControl</c> (which apps may invoke the app), <c>api.allowed</c>/<c>api.denied</c> (which Dapr APIs the
/// app may call), <c>secrets.scopes</c> (which secrets it may read) and <c>tracing.samplingRate</c>.
/// </summary>
public sealed record ConfigurationResourceConfig
{
    public const string KindName = "Configuration";

    public required string Name { get; init; }
    public AccessControlConfig? AccessControl { get; init; }

    /// <summary><c>spec.api</c>: null when the Configuration has neither an allow list nor a deny list.</summary>
    public ApiAccessConfig? Api { get; init; }

    /// <summary><c>spec.secrets.scopes</c>, one per secret store.</summary>
    public IReadOnlyList<SecretScopeConfig> SecretScopes { get; init; } = [];

    /// <summary><c>spec.tracing.samplingRate</c>, 0 to 1; null when not set (the runtime's default applies).</summary>
    public double? SamplingRate { get; init; }

    /// <summary>The Kubernetes namespace whose Tenants may name it; null for resource files.</summary>
    public string? Namespace { get; init; }

    public required string Source { get; init; }
}
