using System.Threading.RateLimiting;
using SharedRuntime.Configuration;

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
}

public static class RejectionReasons
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

/// <summary>
/// One tenant's admission: a token bucket (sustained rate and burst) in front of a bulkhead (requests in flight and
/// a bounded wait line). The bucket is refilled lazily from elapsed time on each attempt, so an idle tenant costs no
/// timer; 10,000 resident tenants cost 10,000 small objects and nothing per second.
/// </summary>
public sealed class TenantAdmission : IDisposable
{
    private readonly TokenBucketRateLimiter _rate;

    public TenantAdmission(TenantLimits limits)
    {
        Limits = limits;
        _rate = new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = limits.Burst,
            // Tokens accrue continuously at TokensPerPeriod / ReplenishmentPeriod; TryReplenish adds what elapsed.
            TokensPerPeriod = Math.Max(1, (int)Math.Round(limits.RequestsPerSecond)),
            ReplenishmentPeriod = limits.RequestsPerSecond >= 1
                ? TimeSpan.FromSeconds(Math.Max(1, (int)Math.Round(limits.RequestsPerSecond)) / limits.RequestsPerSecond)
                : TimeSpan.FromSeconds(1 / limits.RequestsPerSecond),
            AutoReplenishment = false,
            QueueLimit = 0,
        });
        Bulkhead = new Bulkhead(limits.MaxConcurrency, limits.MaxQueue);
    }

    public TenantLimits Limits { get; }

    public Bulkhead Bulkhead { get; }

    /// <summary>Takes one token from the bucket. On refusal, <paramref name="retryAfter"/> says when one will be there.</summary>
    public bool TryTakeToken(out TimeSpan retryAfter)
    {
        _rate.TryReplenish();
        using var lease = _rate.AttemptAcquire();
        if (lease.IsAcquired)
        {
            retryAfter = TimeSpan.Zero;
            return true;
        }
        retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromSeconds(1);
        return false;
    }

    /// <summary>
    /// The fast path: a token and a free slot, no waiting. Returns <see cref="RejectionReason.None"/> when admitted
    /// (the caller must <see cref="Exit"/>), <see cref="RejectionReason.BulkheadFull"/> when the caller should
    /// <see cref="EnterAsync"/> to wait in line, or <see cref="RejectionReason.RateLimited"/>.
    /// </summary>
    public RejectionReason TryEnter(out TimeSpan retryAfter)
    {
        if (!TryTakeToken(out retryAfter))
        {
            return RejectionReason.RateLimited;
        }
        return Bulkhead.TryEnter() ? RejectionReason.None : RejectionReason.BulkheadFull;
    }

    /// <summary>Waits in line for a slot (the token is already taken). False when the line is full.</summary>
    public ValueTask<bool> EnterAsync(CancellationToken cancellationToken) => Bulkhead.EnterAsync(cancellationToken);

    public void Exit() => Bulkhead.Exit();

    public void Dispose() => _rate.Dispose();
}
