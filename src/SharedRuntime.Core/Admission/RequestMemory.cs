namespace SharedRuntime.Admission;

/// <summary>
/// What one request holds of its tenant's <see cref="MemoryBudget"/>: charged piece by piece while the request is
/// served, given back at once when it ends (<see cref="Dispose"/>). Safe to charge from parallel work of the request.
/// </summary>
public sealed class RequestMemory(MemoryBudget budget, string appId) : IDisposable
{
    private long _charged;
    private int _refusal;

    public MemoryBudget Budget { get; } = budget;

    /// <summary>The tenant the bytes are charged to, for messages.</summary>
    public string AppId { get; } = appId;

    /// <summary>Bytes this request holds now.</summary>
    public long Charged => Volatile.Read(ref _charged);

    /// <summary>Why the request was refused for memory (<see cref="RecordRefusal"/>), or <see cref="MemoryCharge.Charged"/>.</summary>
    public MemoryCharge Refusal => (MemoryCharge)Volatile.Read(ref _refusal);

    /// <summary>Charges <paramref name="bytes"/> more to this request, its tenant and the node; all or nothing.</summary>
    public MemoryCharge TryCharge(long bytes)
    {
        if (bytes <= 0)
        {
            return MemoryCharge.Charged;
        }
        var total = Interlocked.Add(ref _charged, bytes);
        var result = total > Budget.Limit || (Budget.Node is { } node && total > node.Limit)
            ? MemoryCharge.NeverFits
            : Budget.TryCharge(bytes);
        if (result != MemoryCharge.Charged)
        {
            Interlocked.Add(ref _charged, -bytes);
        }
        return result;
    }

    /// <summary>Notes that the request was refused for <paramref name="refusal"/>, for its metrics.</summary>
    public void RecordRefusal(MemoryCharge refusal) => Volatile.Write(ref _refusal, (int)refusal);

    /// <summary>Gives back part of what this request holds, before it ends.</summary>
    public void Release(long bytes)
    {
        bytes = Math.Min(bytes, Charged);
        if (bytes > 0)
        {
            Interlocked.Add(ref _charged, -bytes);
            Budget.Release(bytes);
        }
    }

    public void Dispose() => Budget.Release(Interlocked.Exchange(ref _charged, 0));
}
