using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using SharedRuntime.Metrics;

namespace SharedRuntime.Http;

/// <summary>
/// Bounds the client connections the runtime holds open at once, over all its listeners: the invoke relay's and the
/// HTTP server's. Each open connection holds a descriptor and buffers, so without a bound one client opening
/// connections could exhaust the process's descriptors (a failed accept, then whatever else needs one) or its memory.
/// Past the bound a new connection is accepted and closed at once, so the listen queue does not fill behind it; a
/// warning says so, at most once every 10 s.
/// </summary>
public sealed class ConnectionLimit
{
    private const long WarnEvery = 10_000; // milliseconds
    private readonly int _max;
    private readonly ILogger<ConnectionLimit> _logger;
    private int _open;
    private long _warned = -WarnEvery;

    /// <summary>Exported as <c>sharedruntime_connections_open</c> and <c>sharedruntime_connections_max</c> when <paramref name="meters"/> is given.</summary>
    public ConnectionLimit(int max, ILogger<ConnectionLimit> logger, IMeterFactory? meters = null)
    {
        _max = max;
        _logger = logger;
        if (meters?.Create(RuntimeMetrics.MeterName) is { } meter)
        {
            meter.CreateObservableGauge("sharedruntime.connections.open", () => Open,
                description: "Client connections open now over all listeners.");
            meter.CreateObservableGauge("sharedruntime.connections.max", () => _max,
                description: "The bound on open client connections (--max-connections, at most half the open-files limit); past it new connections are closed at once.");
        }
    }

    /// <summary>Connections open now.</summary>
    public int Open => Volatile.Read(ref _open);

    /// <summary>Counts one more open connection; false, counting nothing, when the bound is reached already.</summary>
    public bool TryOpen()
    {
        if (Interlocked.Increment(ref _open) > _max)
        {
            Interlocked.Decrement(ref _open);
            var now = Environment.TickCount64;
            var warned = Volatile.Read(ref _warned);
            if (now - warned >= WarnEvery && Interlocked.CompareExchange(ref _warned, now, warned) == warned)
            {
                ConnectionLimitLog.Reached(_logger, _max);
            }
            return false;
        }
        return true;
    }

    /// <summary>A connection counted by <see cref="TryOpen"/> closed.</summary>
    public void Closed() => Interlocked.Decrement(ref _open);

    /// <summary>The HTTP server's connection middleware: a connection past the bound is closed before any byte is read.</summary>
    public ConnectionDelegate Middleware(ConnectionDelegate next) => async connection =>
    {
        if (!TryOpen())
        {
            return; // the server closes a connection whose middleware returned
        }
        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            Closed();
        }
    };
}

internal static partial class ConnectionLimitLog
{
    [LoggerMessage(2157, LogLevel.Warning, "{Max} client connections are open, the runtime's bound (--max-connections): new connections are closed at once until some end (said at most every 10 s)")]
    public static partial void Reached(ILogger logger, int max);
}
