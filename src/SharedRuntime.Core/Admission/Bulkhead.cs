namespace SharedRuntime.Admission;

/// <summary>
/// At most <c>maxConcurrency</c> holders at once, with a bounded FIFO of waiters behind them. Entering when a slot is
/// free allocates nothing; only queued waiters allocate. (The runtime's ConcurrencyLimiter allocates a lease per
/// acquisition, which the admission path cannot afford.)
/// </summary>
public sealed class Bulkhead
{
    private readonly Lock _lock = new();
    /// <summary>Made when the first request waits: most tenants never fill their slots, and every tenant keeps a bulkhead.</summary>
    private Queue<TaskCompletionSource<bool>>? _waiters;
    private readonly int _maxConcurrency;
    private readonly int _maxQueue;
    private int _inFlight;

    public Bulkhead(int maxConcurrency, int maxQueue)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConcurrency, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxQueue);
        _maxConcurrency = maxConcurrency;
        _maxQueue = maxQueue;
    }

    public int InFlight => Volatile.Read(ref _inFlight);

    public int Queued
    {
        get
        {
            lock (_lock)
            {
                return _waiters?.Count ?? 0;
            }
        }
    }

    /// <summary>Takes a slot if one is free and nobody is waiting for one.</summary>
    public bool TryEnter()
    {
        lock (_lock)
        {
            if (_inFlight < _maxConcurrency && (_waiters?.Count ?? 0) == 0)
            {
                _inFlight++;
                return true;
            }
            return false;
        }
    }

    /// <summary>
    /// Takes a slot, waiting in line if all are taken. False at once when the line is full, or when
    /// <paramref name="cancellationToken"/> fires while waiting.
    /// </summary>
    public ValueTask<bool> EnterAsync(CancellationToken cancellationToken)
    {
        TaskCompletionSource<bool> waiter;
        lock (_lock)
        {
            if (_inFlight < _maxConcurrency && (_waiters?.Count ?? 0) == 0)
            {
                _inFlight++;
                return new ValueTask<bool>(true);
            }
            _waiters ??= new Queue<TaskCompletionSource<bool>>();
            if (_waiters.Count >= _maxQueue)
            {
                return new ValueTask<bool>(false);
            }
            waiter = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Enqueue(waiter);
        }
        return WaitAsync(waiter, cancellationToken);
    }

    private async ValueTask<bool> WaitAsync(TaskCompletionSource<bool> waiter, CancellationToken cancellationToken)
    {
        if (cancellationToken.CanBeCanceled)
        {
            await using var registration = cancellationToken.UnsafeRegister(static state => ((TaskCompletionSource<bool>)state!).TrySetResult(false), waiter);
            var entered = await waiter.Task.ConfigureAwait(false);
            if (!entered)
            {
                Abandon(waiter);
            }
            return entered;
        }
        return await waiter.Task.ConfigureAwait(false);
    }

    /// <summary>A waiter gave up. If a slot was handed to it in the same moment, pass the slot on.</summary>
    private void Abandon(TaskCompletionSource<bool> waiter)
    {
        lock (_lock)
        {
            if (_waiters is not null && _waiters.Contains(waiter))
            {
                var remaining = _waiters.Where(w => w != waiter).ToArray();
                _waiters.Clear();
                foreach (var w in remaining)
                {
                    _waiters.Enqueue(w);
                }
            }
        }
    }

    /// <summary>Gives a slot back, handing it straight to the first waiter if there is one.</summary>
    public void Exit()
    {
        while (true)
        {
            TaskCompletionSource<bool> next;
            lock (_lock)
            {
                if (_waiters is null || _waiters.Count == 0)
                {
                    _inFlight--;
                    return;
                }
                next = _waiters.Dequeue();
            }
            // The slot moves to the waiter without being released; a waiter that was cancelled refuses it.
            if (next.TrySetResult(true))
            {
                return;
            }
        }
    }
}
