namespace SharedRuntime.Configuration;

/// <summary>A Dapr <c>Resiliency</c> resource (dapr.io/v1alpha1): named policies and the targets they guard.</summary>
public sealed record ResiliencyConfig
{
    public const string KindName = "Resiliency";

    public required string Name { get; init; }
    public required IReadOnlyDictionary<string, TimeSpan> Timeouts { get; init; }
    public required IReadOnlyDictionary<string, RetryPolicyConfig> Retries { get; init; }
    public required IReadOnlyDictionary<string, CircuitBreakerPolicyConfig> CircuitBreakers { get; init; }

    /// <summary>Policies for calls to app-ids (<c>spec.targets.apps</c>).</summary>
    public required IReadOnlyDictionary<string, PolicyRefs> Apps { get; init; }

    /// <summary>Policies for components (<c>spec.targets.components.{name}.outbound|inbound</c>).</summary>
    public required IReadOnlyDictionary<string, ComponentPolicyRefs> Components { get; init; }

    /// <summary>The apps whose calls these policies govern; empty means every app.</summary>
    public IReadOnlyList<string> Scopes { get; init; } = [];

    public required string Source { get; init; }

    /// <summary>The Kubernetes namespace whose apps it governs; null for resource files.</summary>
    public string? Namespace { get; init; }

    public bool AppliesTo(string appId) => Scopes.Count == 0 || Scopes.Contains(appId, StringComparer.Ordinal);

    /// <summary>Dapr's rule: a Resiliency governs only apps of its own namespace, then only those its scopes name.</summary>
    public bool AppliesTo(string appId, string? @namespace) => ResourceNamespace.Same(Namespace, @namespace) && AppliesTo(appId);
}

public enum RetryBackoff { Constant, Exponential }

/// <summary>A retry policy; <see cref="MaxRetries"/> -1 retries for ever.</summary>
public sealed record RetryPolicyConfig(
    RetryBackoff Policy,
    TimeSpan Duration,
    TimeSpan MaxInterval,
    int MaxRetries,
    StatusCodeSet? HttpStatusCodes,
    StatusCodeSet? GrpcStatusCodes);

/// <summary>A circuit breaker: trips when <see cref="Trip"/> holds, stays open <see cref="Timeout"/>, then lets <see cref="MaxRequests"/> probes through.</summary>
public sealed record CircuitBreakerPolicyConfig(int MaxRequests, TimeSpan Interval, TimeSpan Timeout, TripExpression Trip);

/// <summary>Names of the policies applied to one target; any may be null.</summary>
public sealed record PolicyRefs(string? Timeout, string? Retry, string? CircuitBreaker);

public sealed record ComponentPolicyRefs(PolicyRefs? Outbound, PolicyRefs? Inbound);
