using SharedRuntime.Tenancy;

namespace SharedRuntime.BuildingBlocks;

/// <summary>Whether the runtime answers healthz with 204: configuration loaded and not draining.</summary>
public sealed class RuntimeHealth(RuntimeConfiguration configuration)
{
    private volatile string? _draining;

    public bool IsReady => configuration.IsLoaded && _draining is null;

    public string NotReadyReason => _draining ?? (configuration.IsLoaded ? "" : "configuration not loaded yet");

    public void BeginDrain(string reason) => _draining = reason;
}
