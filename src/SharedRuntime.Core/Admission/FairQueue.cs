namespace SharedRuntime.Admission;

/// <summary>
/// Shares a bounded number of concurrent calls into one backend fairly between tenants. A call runs at once when a
/// slot is free and nobody waits; otherwise it waits in its tenant's FIFO line, and each freed slot goes to the head of
/// the next tenant's line in turn (round robin), so a tenant with a long line delays another tenant's call by at most
/// one turn. A tenant may have at most <c>maxQueuedPerTenant</c> calls waiting; beyond that a call is refused at once
/// with <see cref="FairQueueFullException"/>.
/// </summary>
public sealed class FairQueue
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, TenantLine> _lines = new(StringComparer.Ordinal);
    private readonly LinkedList<TenantLine> _turns = new();
    private int _inFlight;

    public FairQueue(int maxConcurrency, int maxQueuedPerTenant)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConcurrency, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxQueuedPerTenant);
        MaxConcurrency = maxConcurrency;
        MaxQueuedPerTenant = maxQueuedPerTenant;
    }

    public int MaxConcurrency { get; }

    public int MaxQueuedPerTenant { get; }

    public int InFlight
    {
        get
        {
            lock (_lock)
            {
                return _inFlight;
            }
        }
    }

    /// <summary>Calls of <paramref name="tenant"/> waiting for a slot.</summary>
    public int QueuedFor(string tenant)
    {
        lock (_lock)
        {
            return _lines.TryGetValue(tenant, out var line) ? line.Waiters.Count : 0;
        }
    }

    /// <summary>Runs <paramref name="call"/> in a slot, waiting in the tenant's line when all slots are taken.</summary>
    public ValueTask<T> RunAsync<T, TState>(string tenant, TState state, Func<TState, CancellationToken, ValueTask<T>> call, CancellationToken cancellationToken) =>
        RunAsync(tenant, MaxQueuedPerTenant, state, call, cancellationToken);

    /// <summary>
    /// Like <see cref="RunAsync{T, TState}(string, TState, Func{TState, CancellationToken, ValueTask{T}}, CancellationToken)"/>
    /// with a line bound of its own, for callers whose number is bounded elsewhere (a broker's deliveries in flight).
    /// </summary>
    public async ValueTask<T> RunAsync<T, TState>(string tenant, int lineLimit, TState state, Func<TState, CancellationToken, ValueTask<T>> call, CancellationToken cancellationToken)
    {
        await EnterAsync(tenant, lineLimit, cancellationToken).ConfigureAwait(false);
        try
        {
            return await call(state, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>
    /// Takes a slot for <paramref name="tenant"/>, waiting in its line (at most <paramref name="lineLimit"/> long) when all
    /// are taken; give it back with <see cref="Exit"/>. Throws <see cref="FairQueueFullException"/> when the line is full.
    /// </summary>
    public ValueTask EnterAsync(string tenant, int lineLimit, CancellationToken cancellationToken) =>
        TryEnterOrQueue(tenant, lineLimit, out var waiter) switch
        {
            Entry.Entered => ValueTask.CompletedTask,
            Entry.Queued => WaitAsync(waiter!, cancellationToken),
            _ => throw new FairQueueFullException(tenant, lineLimit),
        };

    /// <summary>
    /// Takes a slot for <paramref name="tenant"/> like <see cref="EnterAsync"/> with the queue's own line bound, but a
    /// full line is the answer false rather than an exception (an expected refusal, not a fault). Give a slot taken
    /// back with <see cref="Exit"/>.
    /// </summary>
    public ValueTask<bool> TryEnterAsync(string tenant, CancellationToken cancellationToken) =>
        TryEnterOrQueue(tenant, MaxQueuedPerTenant, out var waiter) switch
        {
            Entry.Entered => new ValueTask<bool>(true),
            Entry.Queued => WaitForSlotAsync(waiter!, cancellationToken),
            _ => new ValueTask<bool>(false),
        };

    /// <summary>
    /// Takes a slot only when one is free and nobody waits for one; never joins a line. Give a slot taken back with
    /// <see cref="Exit"/>.
    /// </summary>
    public bool TryEnterNow()
    {
        lock (_lock)
        {
            if (_inFlight < MaxConcurrency && _turns.Count == 0)
            {
                _inFlight++;
                return true;
            }
            return false;
        }
    }

    private async ValueTask<bool> WaitForSlotAsync(Waiter waiter, CancellationToken cancellationToken)
    {
        await WaitAsync(waiter, cancellationToken).ConfigureAwait(false);
        return true;
    }

    private enum Entry { Entered, Queued, Full }

    private Entry TryEnterOrQueue(string tenant, int lineLimit, out Waiter? waiter)
    {
        lock (_lock)
        {
            waiter = null;
            if (_inFlight < MaxConcurrency && _turns.Count == 0)
            {
                _inFlight++;
                return Entry.Entered;
            }
            if (!_lines.TryGetValue(tenant, out var line))
            {
                line = new TenantLine(tenant);
                _lines.Add(tenant, line);
            }
            if (line.Waiters.Count >= lineLimit)
            {
                RetireIfEmpty(line);
                return Entry.Full;
            }
            waiter = new Waiter(line);
            waiter.Node = line.Waiters.AddLast(waiter);
            if (line.Turn.List is null)
            {
                _turns.AddLast(line.Turn);
            }
            return Entry.Queued;
        }
    }

    private async ValueTask WaitAsync(Waiter waiter, CancellationToken cancellationToken)
    {
        if (!cancellationToken.CanBeCanceled)
        {
            await waiter.Task.ConfigureAwait(false);
            return;
        }
        await using (cancellationToken.UnsafeRegister(static (state, token) => ((Waiter)state!).TrySetCanceled(token), waiter).ConfigureAwait(false))
        {
            try
            {
                await waiter.Task.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                Abandon(waiter);
                throw;
            }
        }
    }

    /// <summary>A waiter gave up: take it out of its line. (A slot handed to it in the same moment was refused by TrySetResult.)</summary>
    private void Abandon(Waiter waiter)
    {
        lock (_lock)
        {
            if (waiter.Node?.List is not null)
            {
                waiter.Line.Waiters.Remove(waiter.Node);
                RetireIfEmpty(waiter.Line);
            }
        }
    }

    /// <summary>Gives the slot to the first waiter of the tenant whose turn it is, or frees it.</summary>
    public void Exit()
    {
        while (true)
        {
            Waiter next;
            lock (_lock)
            {
                var turn = _turns.First;
                if (turn is null)
                {
                    _inFlight--;
                    return;
                }
                var line = turn.Value;
                next = line.Waiters.First!.Value;
                line.Waiters.RemoveFirst();
                _turns.RemoveFirst();
                if (line.Waiters.Count > 0)
                {
                    _turns.AddLast(line.Turn);
                }
                else
                {
                    _lines.Remove(line.Tenant);
                }
            }
            // The slot moves to the waiter without being freed; a waiter that was cancelled refuses it.
            if (next.TrySetResult())
            {
                return;
            }
        }
    }

    private void RetireIfEmpty(TenantLine line)
    {
        if (line.Waiters.Count == 0)
        {
            if (line.Turn.List is not null)
            {
                _turns.Remove(line.Turn);
            }
            _lines.Remove(line.Tenant);
        }
    }

    private sealed class TenantLine
    {
        public TenantLine(string tenant)
        {
            Tenant = tenant;
            Turn = new LinkedListNode<TenantLine>(this);
        }

        public string Tenant { get; }

        public LinkedList<Waiter> Waiters { get; } = new();

        /// <summary>This line's place in the round robin (in the list only while it has waiters).</summary>
        public LinkedListNode<TenantLine> Turn { get; }
    }

    private sealed class Waiter(TenantLine line) : TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public TenantLine Line { get; } = line;

        public LinkedListNode<Waiter>? Node { get; set; }
    }
}

/// <summary>A tenant already has as many calls waiting for a backend as it may.</summary>
internal sealed class FairQueueFullException(string tenant, int limit) : Exception(MessageFor(tenant, limit))
{
    public string Tenant { get; } = tenant;

    /// <summary>What a full line is answered with, thrown or not.</summary>
    public static string MessageFor(string tenant, int limit) => $"app {tenant} already has {limit} calls waiting for this backend; try again shortly";
}
