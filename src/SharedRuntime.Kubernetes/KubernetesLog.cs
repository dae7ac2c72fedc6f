using Microsoft.Extensions.Logging;

namespace SharedRuntime.Kubernetes;

internal static partial class KubernetesLog
{
    [LoggerMessage(4001, LogLevel.Warning, "Resource type {Kind} is not installed in the cluster (404) or, cluster-wide, not readable by the runtime (403); got {Status}; treating it as empty and looking again every {RetrySeconds}s")]
    public static partial void KindNotInstalled(ILogger logger, string kind, int status, double retrySeconds);

    [LoggerMessage(4002, LogLevel.Information, "Resource type {Kind} is now installed; reading it")]
    public static partial void KindInstalled(ILogger logger, string kind);

    [LoggerMessage(4003, LogLevel.Warning, "Listing {Kind} failed, trying again in {WaitMs:F0} ms: {Problem}")]
    public static partial void ListFailed(ILogger logger, string kind, string problem, double waitMs);

    [LoggerMessage(4004, LogLevel.Warning, "Watch of {Kind} dropped, resuming in {WaitMs:F0} ms: {Problem}")]
    public static partial void WatchDropped(ILogger logger, string kind, string problem, double waitMs);

    [LoggerMessage(4005, LogLevel.Information, "Watch of {Kind} from resourceVersion {ResourceVersion} is too old (410 Gone); listing again")]
    public static partial void WatchGone(ILogger logger, string kind, string resourceVersion);

    [LoggerMessage(4006, LogLevel.Warning, "Ignoring {Resource}: {Problem}")]
    public static partial void ResourceIgnored(ILogger logger, string resource, string problem);

    [LoggerMessage(4007, LogLevel.Warning, "{Resource}: metadata '{Item}' refers to secret '{Secret}' key '{Key}', which namespace {Namespace} does not have")]
    public static partial void ComponentSecretMissing(ILogger logger, string resource, string item, string secret, string key, string @namespace);

    [LoggerMessage(4008, LogLevel.Information, "Reading resources from the Kubernetes API at {Server} ({Scope})")]
    public static partial void Connecting(ILogger logger, string server, string scope);

    [LoggerMessage(4009, LogLevel.Information, "Service {Service} has {Replicas} ready runtime replicas; Tenants with cluster-wide limits take 1/{Replicas} of them here")]
    public static partial void ReplicasChanged(ILogger logger, string service, int replicas);

    [LoggerMessage(4010, LogLevel.Warning, "{Resource}: limits clamped by TenantLimitPolicy {Policies}: {Clamps}")]
    public static partial void TenantLimitsClamped(ILogger logger, string resource, string policies, string clamps);

    [LoggerMessage(4011, LogLevel.Warning, "Could not record event {Reason} on Tenant {Namespace}/{Name}: {Problem}")]
    public static partial void EventFailed(ILogger logger, string reason, string @namespace, string name, string problem);
}
