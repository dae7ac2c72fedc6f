using SharedRuntime.Configuration;

namespace SharedRuntime.AppChannel;

internal enum CircuitState { Closed, Open, HalfOpen }

/// <summary>
/// A circuit breaker with Dapr's semantics: closed until the trip expression holds over the counts (cleared every
/// <c>interval</c> when one is set), then open for <c>timeout</c>, then half-open letting <c>maxRequests</c> probes
/// through: that many successes close it, any failure opens it again.
/// </summary>
internal sealed class CircuitBreaker(CircuitBreakerPolicyConfig policy, TimeProvider time)
{
    private readonly Lock _lock = new();
    private CircuitState _state = CircuitState.Closed;
    private BreakerCounts _counts;
    private long _generation;
    private DateTimeOffset _expiry = time.GetUtcNow() + (policy.Interval > TimeSpan.Zero ? policy.Interval : TimeSpan.Zero);

    public CircuitBreakerPolicyConfig Policy { get; } = policy;

    public CircuitState State
    {
        get
        {
            lock (_lock)
            {
                Refresh(time.GetUtcNow());
                return _state;
            }
        }
    }

    /// <summary>Takes a call through, or false when the circuit is open (or half-open with its probes taken).</summary>
    public bool TryAcquire(out long generation)
    {
        lock (_lock)
        {
            Refresh(time.GetUtcNow());
            generation = _generation;
            if (_state == CircuitState.Open || (_state == CircuitState.HalfOpen && _counts.Requests >= Policy.MaxRequests))
            {
                return false;
            }
            _counts = _counts with { Requests = _counts.Requests + 1 };
            return true;
        }
    }

    /// <summary>Records the end of a call taken with <see cref="TryAcquire"/>; results of an earlier state are ignored.</summary>
    public void Record(long generation, bool success)
    {
        lock (_lock)
        {
            var now = time.GetUtcNow();
            Refresh(now);
            if (generation != _generation)
            {
                return;
            }
            if (success)
            {
                _counts = _counts with { TotalSuccesses = _counts.TotalSuccesses + 1, ConsecutiveSuccesses = _counts.ConsecutiveSuccesses + 1, ConsecutiveFailures = 0 };
                if (_state == CircuitState.HalfOpen && _counts.ConsecutiveSuccesses >= Policy.MaxRequests)
                {
                    Enter(CircuitState.Closed, now);
                }
                return;
            }
            _counts = _counts with { TotalFailures = _counts.TotalFailures + 1, ConsecutiveFailures = _counts.ConsecutiveFailures + 1, ConsecutiveSuccesses = 0 };
            if (_state == CircuitState.HalfOpen || Policy.Trip.ShouldTrip(_counts))
            {
                Enter(CircuitState.Open, now);
            }
        }
    }

    /// <summary>Forgets a call that ended without an answer because its caller gave up: it counts neither way.</summary>
    public void Abandon(long generation)
    {
        lock (_lock)
        {
            if (generation == _generation && _counts.Requests > 0)
            {
                _counts = _counts with { Requests = _counts.Requests - 1 };
            }
        }
    }

    private void Refresh(DateTimeOffset now)
    {
        if (_state == CircuitState.Open && now >= _expiry)
        {
            Enter(CircuitState.HalfOpen, now);
        }
        else if (_state == CircuitState.Closed && Policy.Interval > TimeSpan.Zero && now >= _expiry)
        {
            Enter(CircuitState.Closed, now);
        }
    }

    private void Enter(CircuitState state, DateTimeOffset now)
    {
        _state = state;
        _counts = default;
        _generation++;
        _expiry = state switch
        {
            CircuitState.Open => now + Policy.Timeout,
            CircuitState.Closed when Policy.Interval > TimeSpan.Zero => now + Policy.Interval,
            _ => DateTimeOffset.MaxValue,
        };
    }
}

/// <summary>The call was not made because the target's circuit is open.</summary>
internal sealed class CircuitOpenException(string target) : Exception($"circuit breaker for {target} is open: calls fail fast until it lets a probe through");
