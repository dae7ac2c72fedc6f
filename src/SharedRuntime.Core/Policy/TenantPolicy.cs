using SharedRuntime.Configuration;

namespace SharedRuntime.Policy;

/// <summary>
/// What a tenant's Dapr Configuration (its Tenant's <c>spec.config</c>) says about the tenant's own calls, compiled
/// once per snapshot: which APIs it may call, which secrets it may read, and what share of its calls is traced. A
/// request only reads it.
/// </summary>
public sealed class TenantPolicy
{
    private TenantPolicy(ConfigurationResourceConfig? source)
    {
        Source = source;
        Api = ApiAccessPolicy.Compile(source?.Api);
        Secrets = SecretAccessPolicy.Compile(source?.SecretScopes ?? []);
        SamplingRate = source?.SamplingRate;
    }

    /// <summary>No Configuration: every API and secret open, the runtime's default sampling rate.</summary>
    public static TenantPolicy Open { get; } = new(null);

    public static TenantPolicy Compile(ConfigurationResourceConfig? source) => source is null ? Open : new TenantPolicy(source);

    /// <summary>The Configuration this was compiled from, or null.</summary>
    public ConfigurationResourceConfig? Source { get; }

    /// <summary>Null when every API is open.</summary>
    public ApiAccessPolicy? Api { get; }

    /// <summary>Null when every secret is open.</summary>
    public SecretAccessPolicy? Secrets { get; }

    /// <summary><c>tracing.samplingRate</c>, or null for the runtime's default.</summary>
    public double? SamplingRate { get; }
}
