namespace SharedRuntime.Admission;

/// <summary>The answer of <see cref="MemoryBudget.TryCharge"/>: charged, or why not.</summary>
public enum MemoryCharge
{
    Charged,

    /// <summary>The tenant's requests in flight hold its whole budget now; try again when some end.</summary>
    TenantFull,

    /// <summary>All tenants together hold the node's whole ceiling now; try again when some requests end.</summary>
    NodeFull,

    /// <summary>The request alone needs more than its tenant's budget (or the node's ceiling): it can never be served.</summary>
    NeverFits,
}

/// <summary>
/// Bytes the runtime holds for requests in flight, under a limit: one per tenant (<c>maxMemoryBytes</c>), each
/// charged together with the node's ceiling that all tenants share. Lock-free: a charge is a compare-and-swap on
/// each counter, and a refusal allocates nothing and changes nothing.
/// </summary>
public sealed class MemoryBudget(long limit, MemoryBudget? node = null)
{
    /// <summary>Default node-wide ceiling: with the runtime's own ~100 MB and GC headroom, well under a 512 MiB pod.</summary>
    public const long DefaultNodeBytes = 192L * 1024 * 1024;

    private long _inUse;

    public long Limit { get; } = limit;

    /// <summary>The node's ceiling this budget is charged together with; null for the node's own.</summary>
    public MemoryBudget? Node { get; } = node;

    public long InUse => Volatile.Read(ref _inUse);

    /// <summary>Charges <paramref name="bytes"/> to this budget and the node's, both or neither.</summary>
    public MemoryCharge TryCharge(long bytes)
    {
        if (bytes <= 0)
        {
            return MemoryCharge.Charged;
        }
        if (bytes > Limit || (Node is { } tooSmall && bytes > tooSmall.Limit))
        {
            return MemoryCharge.NeverFits;
        }
        if (!TryAdd(ref _inUse, bytes, Limit))
        {
            return Node is null ? MemoryCharge.NodeFull : MemoryCharge.TenantFull;
        }
        if (Node is { } node && !TryAdd(ref node._inUse, bytes, node.Limit))
        {
            Interlocked.Add(ref _inUse, -bytes);
            return MemoryCharge.NodeFull;
        }
        return MemoryCharge.Charged;
    }

    /// <summary>Gives back bytes charged before.</summary>
    public void Release(long bytes)
    {
        if (bytes <= 0)
        {
            return;
        }
        Interlocked.Add(ref _inUse, -bytes);
        if (Node is { } node)
        {
            Interlocked.Add(ref node._inUse, -bytes);
        }
    }

    private static bool TryAdd(ref long inUse, long bytes, long limit)
    {
        var current = Volatile.Read(ref inUse);
        while (true)
        {
            if (current > limit - bytes)
            {
                return false;
            }
            var seen = Interlocked.CompareExchange(ref inUse, current + bytes, current);
            if (seen == current)
            {
                return true;
            }
            current = seen;
        }
    }
}
