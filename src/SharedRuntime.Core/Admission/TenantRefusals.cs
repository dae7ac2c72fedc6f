namespace SharedRuntime.Admission;

/// <summary>
/// What a tenant's refusals cost the runtime, kept per tenant beside its limiter: the window of the Retry-After it was
/// last told (refusals inside it are a client that did not wait, and may be pushed back), how many of its requests are
/// parked now, a tally per reason so that refusals are logged as one line per interval rather than one per request,
/// and its refusal bodies serialized once. Nothing here allocates per refusal.
/// </summary>
internal sealed class TenantRefusals
{
    private static readonly int ReasonCount = Enum.GetValues<RejectionReason>().Length;

    private readonly int[] _pending = new int[ReasonCount];
    private readonly long[] _lastLine = new long[ReasonCount];
    private long _retryAfterEnds = long.MinValue;
    private int _parked;
    private CachedBody? _rateLimitedBody;
    private CachedBody? _fairShareBody;

    public TenantRefusals()
    {
        Array.Fill(_lastLine, long.MinValue);
    }

    /// <summary>Requests of this tenant parked now.</summary>
    public int Parked => Volatile.Read(ref _parked);

    /// <summary>
    /// A refusal with <paramref name="retryAfter"/> announced, at timestamp <paramref name="now"/>. The first refusal
    /// after the last announced wait has passed opens a new wait and returns <see cref="TimeSpan.Zero"/>: it is answered
    /// at once. A refusal while the announced wait runs returns what remains of it: the client did not wait.
    /// </summary>
    public TimeSpan Refused(long now, TimeSpan retryAfter, TimeProvider time)
    {
        var ends = Volatile.Read(ref _retryAfterEnds);
        if (now < ends)
        {
            return time.GetElapsedTime(now, ends);
        }
        var next = now + (long)(retryAfter.TotalSeconds * time.TimestampFrequency);
        // Racing refusals: one opens the window, the others find it open on their next request.
        Interlocked.CompareExchange(ref _retryAfterEnds, next, ends);
        return TimeSpan.Zero;
    }

    /// <summary>Takes one of <paramref name="max"/> parking places of this tenant.</summary>
    public bool TryPark(int max)
    {
        if (Interlocked.Increment(ref _parked) <= max)
        {
            return true;
        }
        Interlocked.Decrement(ref _parked);
        return false;
    }

    public void Unpark() => Interlocked.Decrement(ref _parked);

    /// <summary>
    /// Counts a refusal for <paramref name="reason"/>. Returns true, with the refusals counted since the last line, when
    /// a log line is due: the first refusal, then at most one per <paramref name="interval"/>.
    /// </summary>
    public bool Tally(RejectionReason reason, long now, TimeSpan interval, TimeProvider time, out int count)
    {
        var i = (int)reason;
        Interlocked.Increment(ref _pending[i]);
        var last = Volatile.Read(ref _lastLine[i]);
        if (last != long.MinValue && time.GetElapsedTime(last, now) < interval ||
            Interlocked.CompareExchange(ref _lastLine[i], now, last) != last)
        {
            count = 0;
            return false;
        }
        count = Interlocked.Exchange(ref _pending[i], 0);
        return count > 0;
    }

    /// <summary>
    /// The JSON body of this tenant's rate-limit refusal, made once by <paramref name="create"/> for the app it names
    /// (one admission shared by several apps, in the benchmark-only shared mode, makes it again when the app changes).
    /// </summary>
    public byte[] RateLimitedBody<TState>(string appId, TState state, Func<TState, byte[]> create) =>
        Body(ref _rateLimitedBody, appId, state, create);

    /// <summary>The JSON body of this tenant's fair-share refusal, made once like <see cref="RateLimitedBody"/>.</summary>
    public byte[] FairShareBody<TState>(string appId, TState state, Func<TState, byte[]> create) =>
        Body(ref _fairShareBody, appId, state, create);

    private static byte[] Body<TState>(ref CachedBody? slot, string appId, TState state, Func<TState, byte[]> create)
    {
        var cached = Volatile.Read(ref slot);
        if (cached is not null && ReferenceEquals(cached.AppId, appId))
        {
            return cached.Body;
        }
        var body = create(state);
        Volatile.Write(ref slot, new CachedBody(appId, body));
        return body;
    }

    private sealed record CachedBody(string AppId, byte[] Body);
}
