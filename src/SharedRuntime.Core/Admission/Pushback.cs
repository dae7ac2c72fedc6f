namespace SharedRuntime.Admission;

/// <summary>
/// How long, and how many, requests of tenants that ignore their Retry-After are held before their refusal is written,
/// and requests over their tenant's fair share wait for its turn. <see cref="MaxDelay"/> zero turns push-back off.
/// </summary>
internal sealed record PushbackOptions(TimeSpan MaxDelay, int MaxParked)
{
    public static readonly PushbackOptions Default = new(TimeSpan.FromSeconds(1), 1024);

    public static readonly PushbackOptions Off = new(TimeSpan.Zero, 0);

    /// <summary>A quarter of the node's places for any one tenant, so that one flood cannot take them all.</summary>
    public int MaxParkedPerTenant => Math.Max(1, MaxParked / 4);
}

/// <summary>
/// Push-back on a tenant that keeps sending after a 429: its next refusals inside the announced Retry-After are written
/// only when that wait has passed (at most <see cref="PushbackOptions.MaxDelay"/>). Meanwhile the connection reads no
/// further request (HTTP/1.1 answers in order; an HTTP/2 stream stays open), so the flood waits in the client's own
/// queue and socket buffers instead of costing the runtime a parse, a look-up and an answer per request. The places
/// are bounded for the node and per tenant; past them a refusal is answered at once, as without push-back. A parked
/// request holds no thread, only its timer and the connection's buffers.
/// <para>
/// The same places hold the requests of a tenant over its share of a saturated runtime (<see cref="FairShare"/>) until
/// its turn at its capped rate: a closed-loop flood is then served exactly its cap, and costs no refusal at all.
/// </para>
/// </summary>
internal sealed class Pushback(PushbackOptions options, TimeProvider time)
{
    private int _parked;

    public PushbackOptions Options { get; } = options;

    public TimeProvider Time { get; } = time;

    /// <summary>Requests parked now, all tenants together.</summary>
    public int Parked => Volatile.Read(ref _parked);

    /// <summary>
    /// Takes a place for a refusal that came <paramref name="early"/> before the tenant's announced wait ended; the
    /// caller waits <paramref name="delay"/> and then calls <see cref="Release"/>. False: answer at once.
    /// </summary>
    public bool TryPark(TenantRefusals refusals, TimeSpan early, out TimeSpan delay)
    {
        delay = early < Options.MaxDelay ? early : Options.MaxDelay;
        return delay > TimeSpan.Zero && TryTakePlace(refusals);
    }

    /// <summary>
    /// Takes a place for a request that waits for its tenant's turn at its fair-share cap; the caller then calls
    /// <see cref="Release"/>. False: no place left (or push-back off), refuse it instead.
    /// </summary>
    public bool TryHold(TenantRefusals refusals) => Options.MaxDelay > TimeSpan.Zero && TryTakePlace(refusals);

    /// <summary>One of the node's places, and one of the tenant's; neither when either is full.</summary>
    private bool TryTakePlace(TenantRefusals refusals)
    {
        if (Interlocked.Increment(ref _parked) > Options.MaxParked)
        {
            Interlocked.Decrement(ref _parked);
            return false;
        }
        if (!refusals.TryPark(Options.MaxParkedPerTenant))
        {
            Interlocked.Decrement(ref _parked);
            return false;
        }
        return true;
    }

    public void Release(TenantRefusals refusals)
    {
        refusals.Unpark();
        Interlocked.Decrement(ref _parked);
    }
}
