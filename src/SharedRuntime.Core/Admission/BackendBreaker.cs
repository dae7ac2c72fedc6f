namespace SharedRuntime.Admission;

/// <summary>
/// A circuit breaker for one component's backend: after <c>failureThreshold</c> consecutive backend failures it opens
/// for <c>openDuration</c>, failing calls at once instead of letting each wait for a server that is down; then one
/// probe call goes through: success closes it, failure opens it again. Recovers by itself once the server is back.
/// </summary>
public sealed class BackendBreaker(int failureThreshold, TimeSpan openDuration, TimeProvider time)
{
    private readonly Lock _lock = new();
    private int _consecutiveFailures;
    private DateTimeOffset _openUntil;
    private bool _open;
    private bool _probing;

    public int FailureThreshold { get; } = failureThreshold;

    public TimeSpan OpenDuration { get; } = openDuration;

    public bool IsOpen
    {
        get
        {
            lock (_lock)
            {
                return _open;
            }
        }
    }

    /// <summary>True when a call may go to the backend; false with the time left while the breaker is open.</summary>
    public bool TryAcquire(out TimeSpan retryAfter)
    {
        lock (_lock)
        {
            retryAfter = TimeSpan.Zero;
            if (!_open)
            {
                return true;
            }
            var now = time.GetUtcNow();
            if (now < _openUntil || _probing)
            {
                retryAfter = _openUntil > now ? _openUntil - now : TimeSpan.Zero;
                return false;
            }
            _probing = true;
            return true;
        }
    }

    public void RecordSuccess()
    {
        lock (_lock)
        {
            _consecutiveFailures = 0;
            _open = false;
            _probing = false;
        }
    }

    public void RecordFailure()
    {
        lock (_lock)
        {
            _consecutiveFailures++;
            if (_probing || _consecutiveFailures >= FailureThreshold)
            {
                _open = true;
                _probing = false;
                _openUntil = time.GetUtcNow() + OpenDuration;
            }
        }
    }

    /// <summary>A call ended without telling anything about the backend (an etag conflict, a cancelled request).</summary>
    public void RecordNeutral()
    {
        lock (_lock)
        {
            _probing = false;
        }
    }
}
