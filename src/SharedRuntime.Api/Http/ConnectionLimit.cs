using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace SharedRuntime.Http;

/// <summary>
/// Bounds the client connections the runtime holds open at once, over all its listeners: the invoke relay's and the
/// HTTP server's. Each open connection holds a descriptor and buffers, so without a bound one client opening
/// connections could exhaust the process's descriptors (a failed accept, then whatever else needs one) or its memory.
/// Past the bound a new connection is accepted and closed at once, so the listen queue does not fill behind it; a
/// warning says so, at most once every 10 s.
/// </summary>
public sealed class ConnectionLimit(int max, ILogger<ConnectionLimit> logger)
{
    private const long WarnEvery = 10_000; // milliseconds
    private int _open;
    private long _warned = -WarnEvery;

    public int Max => max;

    /// <summary>Connections open now.</summary>
    public int Open => Volatile.Read(ref _open);

    /// <summary>Counts one more open connection; false, counting nothing, when <see cref="Max"/> are open already.</summary>
    public bool TryOpen()
    {
        if (Interlocked.Increment(ref _open) > max)
        {
            Interlocked.Decrement(ref _open);
            var now = Environment.TickCount64;
            var warned = Volatile.Read(ref _warned);
            if (now - warned >= WarnEvery && Interlocked.CompareExchange(ref _warned, now, warned) == warned)
            {
                ConnectionLimitLog.Reached(logger, max);
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
