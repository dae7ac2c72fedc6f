using SharedRuntime.Configuration;

namespace SharedRuntime.AppChannel;

internal sealed partial class AppChannel
{
    private AppConnections? _connections;

    /// <summary>
    /// The channel's connections for relayed invocations, made on first use; null when the app is not reached over plain
    /// HTTP/1.1 or h2c (gRPC or TLS), which only the channel's client speaks.
    /// </summary>
    internal AppConnections? RelayConnections
    {
        get
        {
            if (Protocol is not (AppProtocol.Http or AppProtocol.H2c) || !string.Equals(Endpoint.Scheme, Uri.UriSchemeHttp, StringComparison.Ordinal))
            {
                return null;
            }
            if (_connections is { } connections)
            {
                return connections;
            }
            Interlocked.CompareExchange(ref _connections, new AppConnections(Endpoint, _time, http2: Protocol == AppProtocol.H2c, maxConnections: Config.MaxConcurrency), null);
            if (Volatile.Read(ref _disposed) != 0)
            {
                _connections.Dispose();
            }
            return _connections;
        }
    }

    /// <summary>
    /// Starts a relayed call: false, with nothing taken, when the channel was retired by a reload or its breaker does not
    /// let a call through now. Otherwise the call counts as in flight until <see cref="EndRelay"/>.
    /// </summary>
    internal bool TryBeginRelay(out long generation)
    {
        generation = 0;
        Interlocked.Increment(ref _inFlight);
        if (_retired || (_breaker is not null && !_breaker.TryAcquire(out generation)))
        {
            EndCall();
            return false;
        }
        return true;
    }

    /// <summary>
    /// Ends a relayed call: <paramref name="appFailed"/> true counts against the breaker (no answer, or not one HTTP
    /// could read), false for it, null neither way (the call was not made).
    /// </summary>
    internal void EndRelay(long generation, bool? appFailed)
    {
        if (appFailed is { } failed)
        {
            _breaker?.Record(generation, success: !failed);
        }
        else
        {
            _breaker?.Abandon(generation);
        }
        EndCall();
    }

    private void EndCall()
    {
        if (Interlocked.Decrement(ref _inFlight) == 0 && _retired)
        {
            Dispose();
        }
    }
}
