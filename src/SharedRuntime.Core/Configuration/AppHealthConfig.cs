namespace SharedRuntime.Configuration;

/// <summary>
/// How the runtime probes a tenant's app (Dapr's app health check, opt-in with <c>spec.enableAppHealthCheck</c>). An
/// HTTP or h2c app is healthy when <c>GET {appEndpoint}{Path}</c> answers 2xx; a gRPC app when
/// <c>dapr.proto.runtime.v1.AppCallbackHealthCheck/HealthCheck</c> answers OK. After <see cref="Threshold"/> failed
/// probes in a row the app is unhealthy: its subscriptions and input bindings stop delivering and calls into it are
/// refused without reaching it, until one probe succeeds again.
/// </summary>
public sealed record AppHealthConfig
{
    /// <summary>The shortest <c>appHealthProbeInterval</c>: a tenant cannot make the runtime probe its app in a tight loop.</summary>
    public static readonly TimeSpan MinProbeInterval = TimeSpan.FromSeconds(1);

    /// <summary>The longest <c>appHealthProbeInterval</c>.</summary>
    public static readonly TimeSpan MaxProbeInterval = TimeSpan.FromHours(1);

    /// <summary>The shortest <c>appHealthProbeTimeout</c>.</summary>
    public static readonly TimeSpan MinProbeTimeout = TimeSpan.FromMilliseconds(10);

    /// <summary>The longest <c>appHealthProbeTimeout</c>: what one hung probe can hold.</summary>
    public static readonly TimeSpan MaxProbeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The largest <c>appHealthThreshold</c>.</summary>
    public const int MaxThreshold = 100;

    /// <summary>The longest <c>appHealthCheckPath</c>.</summary>
    public const int MaxPathLength = 1024;

    /// <summary>Path probed on an HTTP or h2c app (<c>appHealthCheckPath</c>, Dapr's default <c>/healthz</c>); unused for gRPC.</summary>
    public string Path { get; init; } = "/healthz";

    /// <summary>Time between probes (<c>appHealthProbeInterval</c>, default 5s, at least 1s).</summary>
    public TimeSpan ProbeInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Time a probe may take before it counts as failed (<c>appHealthProbeTimeout</c>, default 500ms, at most 10s and less than the interval).</summary>
    public TimeSpan ProbeTimeout { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Failed probes in a row after which the app is unhealthy (<c>appHealthThreshold</c>, default 3).</summary>
    public int Threshold { get; init; } = 3;

    public static AppHealthConfig Default { get; } = new();
}
