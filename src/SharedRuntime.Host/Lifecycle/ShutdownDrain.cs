using SharedRuntime.BuildingBlocks;

namespace SharedRuntime.Host.Lifecycle;

/// <summary>
/// The shutdown sequence on SIGTERM: readiness turns false, the listeners close (new connections go only to a
/// process that took over the ports), HTTP/1.1 responses from then on carry <c>Connection: close</c> and HTTP/2
/// connections get GOAWAY (<see cref="Http2ConnectionDrain"/>); then Kestrel stops: it closes idle connections and
/// waits up to the drain time (the host's shutdown timeout) for requests in flight. This class runs the first steps
/// and counts what is in flight.
/// </summary>
/// <remarks>
/// The listeners close before any connection is asked to close: a client reconnecting after <c>Connection: close</c>
/// would otherwise land on this process's listener again and lose its request when Kestrel stops. When a new process
/// took the listeners over (<see cref="ListenerHandoff"/>) the drain begins then, and the SIGTERM that follows finishes it.
/// <see cref="Begin"/> runs once, whoever calls it first: the host's ApplicationStopping callback, <see cref="DrainDelay"/>
/// (the host may stop services while the callback still runs) or the hand-off.
/// </remarks>
internal sealed class ShutdownDrain(RuntimeHealth health, ListenSockets listeners, RuntimeOptions options, TimeProvider time, ILogger<ShutdownDrain> logger)
    : SharedRuntime.Http.Relay.IRequestDrain
{
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _draining = new();
    private int _inFlight;
    private long _startedAt;
    private bool _begun;

    /// <summary>Requests being answered now.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>True once the listeners are closed: connections still open should close after their response.</summary>
    public bool ClosingConnections => listeners.Closed;

    public void RequestStarted() => Interlocked.Increment(ref _inFlight);

    public void RequestFinished() => Interlocked.Decrement(ref _inFlight);

    /// <summary>Cancelled once <see cref="Begin"/> ran, after the listeners closed: open connections should move on.</summary>
    public CancellationToken Draining => _draining.Token;

    /// <summary>True once <see cref="Begin"/> ran.</summary>
    public bool Begun
    {
        get
        {
            lock (_gate)
            {
                return _begun;
            }
        }
    }

    /// <summary>Called when the host starts stopping, before Kestrel stops, or when the listeners were handed over.</summary>
    public void Begin()
    {
        lock (_gate)
        {
            if (_begun)
            {
                return;
            }
            _begun = true;
            _startedAt = time.GetTimestamp();
            health.BeginDrain(listeners.HandedOver ? "handed over to a new process" : "shutting down");
            if (listeners.ReusePort && !listeners.HandedOver && !ListenSockets.KernelMigratesAcceptQueue())
            {
                HostLog.AcceptQueueNotMigrated(logger);
            }
            listeners.CloseAll();
            HostLog.DrainStarted(logger, InFlight, options.GracefulShutdownSeconds);
        }
        // Outside the lock: the callbacks ask Kestrel to close connections.
        _draining.Cancel();
    }

    /// <summary>Called when the host has stopped: Kestrel has closed every connection.</summary>
    public void End()
    {
        var elapsed = time.GetElapsedTime(_startedAt);
        var left = InFlight;
        if (left == 0)
        {
            HostLog.DrainCompleted(logger, (long)elapsed.TotalMilliseconds);
        }
        else
        {
            HostLog.DrainCutShort(logger, (long)elapsed.TotalMilliseconds, left);
        }
    }
}
