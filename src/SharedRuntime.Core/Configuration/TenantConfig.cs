namespace SharedRuntime.Configuration;

/// <summary>A <c>Tenant</c> resource (sharedruntime.io/v1alpha1): one app-id served by the runtime.</summary>
public sealed record TenantConfig
{
    public const string ApiVersion = "sharedruntime.io/v1alpha1";
    public const string KindName = "Tenant";

    public required string Name { get; init; }
    public required string AppId { get; init; }
    public string? AppEndpoint { get; init; }

    /// <summary>How the app is spoken to (<c>spec.appProtocol</c>): HTTP/1.1 unless it asks for h2c.</summary>
    public AppProtocol AppProtocol { get; init; } = AppProtocol.Http;

    /// <summary>How the app's health is probed (<c>spec.enableAppHealthCheck</c> and the rest); null when it is not (Dapr's default).</summary>
    public AppHealthConfig? AppHealth { get; init; }

    /// <summary>The resolved API token. Never logged. Empty when only its hash is known (<see cref="ApiTokenSha256"/>).</summary>
    public required string ApiToken { get; init; }

    /// <summary>
    /// The SHA-256 of the API token, set instead of the token for a Tenant read back from the fail-static cache, which
    /// keeps no token in plain text. Requests are looked up by this hash either way.
    /// </summary>
    public byte[]? ApiTokenSha256 { get; init; }

    /// <summary>The token's SHA-256 as hex: what tells two tenants' tokens apart without holding either.</summary>
    internal string TokenDigest => Convert.ToHexStringLower(ApiTokenSha256 ?? System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(ApiToken)));

    public required TenantLimitsConfig Limits { get; init; }

    /// <summary>How the runtime calls this app (<c>spec.appChannel</c>).</summary>
    public AppChannelConfig AppChannel { get; init; } = AppChannelConfig.Default;

    /// <summary>The Dapr <c>Configuration</c> whose accessControl guards calls into this app (<c>spec.config</c>).</summary>
    public string? ConfigName { get; init; }

    /// <summary>The pods this tenant's token is bound to (<c>spec.identity</c>); null accepts it from any address.</summary>
    public TenantIdentityConfig? Identity { get; init; }

    /// <summary>The Kubernetes namespace of the Tenant; null for resource files (standalone: one namespace).</summary>
    public string? Namespace { get; init; }

    /// <summary>
    /// The tenant's identity on this runtime: the app-id, or in Kubernetes <c>app-id.namespace</c> (Dapr's form for
    /// calling an app in another namespace). Two namespaces with the same app-id are two tenants.
    /// </summary>
    public string Id => ResourceNamespace.Qualify(AppId, Namespace);

    /// <summary>
    /// The operators' defaults and maxima for the Tenant's namespace (TenantLimitPolicy); null when none applies.
    /// <see cref="Limits"/> stays what the Tenant asked for; its effective limits are resolved with this.
    /// </summary>
    public LimitCeiling? Ceiling { get; init; }

    /// <summary>Where it came from ("file: document"), for logs.</summary>
    public required string Source { get; init; }

    public override string ToString() => $"Tenant {Id} ({Source})";
}
