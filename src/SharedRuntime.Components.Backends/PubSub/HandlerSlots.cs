namespace SharedRuntime.Components.PubSub;

/// <summary>
/// The handler calls one broker subscription may run at once, and the wait for the running ones when it stops, so
/// that their acknowledgements still reach the server.
/// </summary>
internal sealed class HandlerSlots(int limit)
{
    /// <summary>How long a stopping subscription waits for its running handler calls.</summary>
    public static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(5);

    private readonly SemaphoreSlim _slots = new(limit, limit);

    public int Limit => limit;

    public Task WaitAsync(CancellationToken cancellationToken) => _slots.WaitAsync(cancellationToken);

    /// <summary>Takes a free slot without waiting.</summary>
    public bool TryTake() => _slots.Wait(0);

    public void Release(int count = 1) => _slots.Release(count);

    /// <summary>Waits until every slot is free again (every running call ended), for <see cref="DrainTimeout"/> at most.</summary>
    public async Task DrainAsync(TimeProvider time)
    {
        using var deadline = new CancellationTokenSource(DrainTimeout, time);
        try
        {
            for (var i = 0; i < limit; i++)
            {
                await _slots.WaitAsync(deadline.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // Calls still running after the deadline end on their own; their messages are delivered again.
        }
    }
}
