using System.Threading.RateLimiting;
using SharedRuntime.Configuration;

namespace SharedRuntime.Admission;

/// <summary>
/// One tenant's admission: a token bucket (sustained rate and burst) in front of a bulkhead (requests in flight and
/// a bounded wait line). The bucket is refilled lazily from elapsed time on each attempt, so an idle tenant costs no
/// timer; 10,000 resident tenants cost 10,000 small objects and nothing per second. In front of the bucket, the tenant's
/// gate of the runtime's <see cref="FairShare"/> caps its rate at its weighted share while the process is saturated and
/// the tenant wants more than that share with more than a couple of requests in flight (its bulkhead's count).
/// </summary>
public sealed class TenantAdmission : IDisposable
{
    private readonly TokenBucketRateLimiter _rate;

    public TenantAdmission(TenantLimits limits)
        : this(limits, FairShare.Off)
    {
    }

    internal TenantAdmission(TenantLimits limits, FairShare fairShare)
    {
        Limits = limits;
        Bulkhead = new Bulkhead(limits.MaxConcurrency, limits.MaxQueue);
        Share = new FairShareGate(fairShare, limits.RequestsPerSecond, Bulkhead);
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
    }

    public TenantLimits Limits { get; }

    public Bulkhead Bulkhead { get; }

    /// <summary>This tenant's gate of the runtime's fair share, and its counts of attempts and admissions.</summary>
    internal FairShareGate Share { get; }

    /// <summary>This tenant's refusals: its announced Retry-After, its parked requests, its log tally.</summary>
    internal TenantRefusals Refusals { get; } = new();

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
    /// <see cref="EnterAsync"/> to wait in line, <see cref="RejectionReason.RateLimited"/> over its own limit, or
    /// <see cref="RejectionReason.FairShare"/> over its share of a saturated runtime.
    /// </summary>
    public RejectionReason TryEnter(out TimeSpan retryAfter) => TryEnter(null, out retryAfter);

    /// <inheritdoc cref="TryEnter(out TimeSpan)"/>
    /// <param name="connection">The tenant's last turn on the request's connection, while the fair share counts (<see cref="FairShareGate.Counting"/>).</param>
    /// <param name="retryAfter">On refusal, when the tenant may try again.</param>
    internal RejectionReason TryEnter(ConnectionTurn? connection, out TimeSpan retryAfter)
    {
        if (!Share.TryPass(connection, out retryAfter))
        {
            return RejectionReason.FairShare;
        }
        return TryEnterLimits(out retryAfter);
    }

    /// <summary>
    /// Like <see cref="TryEnter(ConnectionTurn?, out TimeSpan)"/>, but a request over the tenant's fair share whose turn
    /// at the capped rate comes within <paramref name="maxWait"/> is not refused: it answers
    /// <see cref="RejectionReason.None"/> with <paramref name="wait"/> above zero, and nothing entered yet; the caller waits
    /// that long, then calls <see cref="TryEnterLimits"/> (the tenant's own limit and bulkhead).
    /// </summary>
    internal RejectionReason TryEnter(ConnectionTurn? connection, TimeSpan maxWait, out TimeSpan retryAfter, out TimeSpan wait)
    {
        if (!Share.TryPass(connection, maxWait, out wait))
        {
            retryAfter = wait;
            wait = TimeSpan.Zero;
            return RejectionReason.FairShare;
        }
        if (wait > TimeSpan.Zero)
        {
            retryAfter = TimeSpan.Zero;
            return RejectionReason.None;
        }
        return TryEnterLimits(out retryAfter);
    }

    /// <summary>After the fair share: a token of the tenant's own limit and a free slot of its bulkhead, as <see cref="TryEnter(out TimeSpan)"/> answers.</summary>
    internal RejectionReason TryEnterLimits(out TimeSpan retryAfter)
    {
        if (!TryTakeToken(out retryAfter))
        {
            Share.Limited();
            return RejectionReason.RateLimited;
        }
        return Bulkhead.TryEnter() ? RejectionReason.None : RejectionReason.BulkheadFull;
    }

    /// <summary>Waits in line for a slot (the token is already taken). False when the line is full.</summary>
    public ValueTask<bool> EnterAsync(CancellationToken cancellationToken) => Bulkhead.EnterAsync(cancellationToken);

    public void Exit() => Bulkhead.Exit();

    public void Dispose() => _rate.Dispose();
}
