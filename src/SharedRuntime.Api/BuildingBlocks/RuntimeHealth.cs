using SharedRuntime.Tenancy;

namespace SharedRuntime.BuildingBlocks;

/// <summary>Whether the runtime answers healthz with 204: configuration loaded and not draining.</summary>
internal sealed class RuntimeHealth(RuntimeConfiguration configuration)
{
    private volatile string? _draining;

    public bool IsReady => configuration.IsLoaded && _draining is null;

    /// <summary>True once shutdown has begun: requests still get answered, but the connections they came on close after.</summary>
    public bool IsDraining => _draining is not null;

    public string NotReadyReason => _draining ?? (configuration.IsLoaded ? "" : "configuration not loaded yet");

    public void BeginDrain(string reason) => _draining = reason;
}
