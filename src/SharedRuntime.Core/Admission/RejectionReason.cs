namespace SharedRuntime.Admission;

/// <summary>Why a request was not admitted; the text form is the metrics <c>reason</c> label.</summary>
public enum RejectionReason
{
    None,
    RateLimited,
    BulkheadFull,
    BodyTooLarge,
    QuotaExceeded,
    MemoryBudget,
    NodeMemory,
    TopicsExceeded,
    LocksExceeded,
    PubSubQueueFull,
    AppBusy,
    BackendBusy,
    /// <summary>Within its own limit, but over its share of a saturated runtime (<see cref="FairShare"/>).</summary>
    FairShare,
}

internal static class RejectionReasons
{
    public static string Label(this RejectionReason reason) => reason switch
    {
        RejectionReason.RateLimited => "rate_limited",
        RejectionReason.BulkheadFull => "bulkhead_full",
        RejectionReason.BodyTooLarge => "body_too_large",
        RejectionReason.QuotaExceeded => "quota_exceeded",
        RejectionReason.MemoryBudget => "memory_budget",
        RejectionReason.NodeMemory => "node_memory",
        RejectionReason.TopicsExceeded => "topics_exceeded",
        RejectionReason.LocksExceeded => "locks_exceeded",
        RejectionReason.PubSubQueueFull => "pubsub_queue_full",
        RejectionReason.AppBusy => "app_busy",
        RejectionReason.BackendBusy => "backend_busy",
        RejectionReason.FairShare => "fair_share",
        _ => "none",
    };

    /// <summary>
    /// The rejection a building block's refusal stands for, from its Dapr error: a tenant bound it reached. Refusals
    /// counted where they happen (rate, bulkhead, body, memory) and errors that are no bound answer
    /// <see cref="RejectionReason.None"/>.
    /// </summary>
    public static RejectionReason Of(int httpStatus, string errorCode) => errorCode switch
    {
        _ when httpStatus == 507 => RejectionReason.QuotaExceeded,
        "ERR_TENANT_TOPICS_EXCEEDED" => RejectionReason.TopicsExceeded,
        "ERR_TENANT_LOCKS_EXCEEDED" => RejectionReason.LocksExceeded,
        "ERR_TENANT_PUBSUB_QUEUE_FULL" => RejectionReason.PubSubQueueFull,
        "ERR_TENANT_APP_BUSY" => RejectionReason.AppBusy,
        "ERR_TENANT_BACKEND_BUSY" => RejectionReason.BackendBusy,
        _ => RejectionReason.None,
    };
}
