namespace SharedRuntime.Configuration;

/// <summary>
/// A Dapr <c>Configuration</c> resource (dapr.io/v1alpha1). SharedRuntime reads its <c>accessControl</c>: which
/// apps may invoke the app whose Tenant names this configuration in <c>spec.config</c>.
/// </summary>
public sealed record ConfigurationResourceConfig
{
    public const string KindName = "Configuration";

    public required string Name { get; init; }
    public AccessControlConfig? AccessControl { get; init; }
    public required string Source { get; init; }
}
