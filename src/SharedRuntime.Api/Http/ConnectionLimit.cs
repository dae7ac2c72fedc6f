using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using SharedRuntime.Metrics;

namespace SharedRuntime.Http;

/// <summary>
/// Bounds the client connections the runtime holds open at once, over all its listeners: the invoke relay's and the
/// HTTP server's. Each open connection holds a descriptor and buffers, so without a bound one client opening
/// connections could exhaust the process's descriptors (a failed accept, then whatever else needs one) or its memory.
/// <para>
/// At the bound a new connection still gets in while some connection is idle (no request in flight, and none arriving,
/// for at least <see cref="MinIdle"/>): the idle connection is closed to make room. It is taken from the source address
/// holding the most connections, the one idle longest of those looked at. So a client that opens connections and leaves
/// them idle cannot keep any other client out: it loses its own connections first. Only connections busy with requests,
/// which each tenant's bulkhead bounds, can fill the bound. When none is idle, the new connection is closed at once,
/// before anything is read, so the listen queue does not fill behind it; so is every new one for the next
/// <see cref="SearchAgainAfter"/>, before the connections are looked over again. Warnings say which happened, each at
/// most once every 10 s.
/// </para>
/// </summary>
public sealed class ConnectionLimit
{
    /// <summary>How long a connection must have been idle to be closed for a new one.</summary>
    public static readonly TimeSpan MinIdle = TimeSpan.FromSeconds(1);

    /// <summary>How long a look over every source that found no idle connection holds: new connections until then are refused without one.</summary>
    public static readonly TimeSpan SearchAgainAfter = TimeSpan.FromMilliseconds(100);

    /// <summary>How many of a source's connections are looked at for the one idle longest, from where the last look ended.</summary>
    private const int LookAt = 64;

    private const long WarnEvery = 10_000; // milliseconds
    private readonly int _max;
    private readonly ILogger<ConnectionLimit> _logger;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Dictionary<IPAddress, Source> _sources = [];
    private long _searchAgainAt = long.MinValue;
    private int _open;
    private long _closedIdle;
    private long _warnedFull = -WarnEvery;
    private long _warnedClosing = -WarnEvery;

    /// <summary>Exported as <c>sharedruntime_connections_open</c>, <c>sharedruntime_connections_max</c> and <c>sharedruntime_connections_closed_idle_total</c> when <paramref name="meters"/> is given.</summary>
    public ConnectionLimit(int max, ILogger<ConnectionLimit> logger, IMeterFactory? meters = null, TimeProvider? time = null)
    {
        _max = max;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        if (meters?.Create(RuntimeMetrics.MeterName) is { } meter)
        {
            meter.CreateObservableGauge("sharedruntime.connections.open", () => Open,
                description: "Client connections open now over all listeners.");
            meter.CreateObservableGauge("sharedruntime.connections.max", () => _max,
                description: "The bound on open client connections (--max-connections, at most half the open-files limit).");
            meter.CreateObservableCounter("sharedruntime.connections.closed_idle", () => Interlocked.Read(ref _closedIdle),
                description: "Idle client connections closed to make room for new ones at the bound, taken from the source address holding the most.");
        }
    }

    /// <summary>Connections open now.</summary>
    public int Open => Volatile.Read(ref _open);

    /// <summary>Idle connections closed so far to make room for new ones.</summary>
    public long ClosedIdle => Interlocked.Read(ref _closedIdle);

    /// <summary>
    /// Counts a new connection from <paramref name="remote"/>: its lease, to <see cref="ConnectionLease.Close"/> when it
    /// ends. At the bound an idle connection is closed to make room; null, counting nothing, when none is idle.
    /// </summary>
    public ConnectionLease? TryOpen(EndPoint? remote)
    {
        var address = (remote as IPEndPoint)?.Address is { } ip ? (ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip) : IPAddress.None;
        ConnectionLease? idle = null;
        ConnectionLease lease;
        lock (_lock)
        {
            if (_open >= _max)
            {
                idle = TakeIdle();
                if (idle is null)
                {
                    if (TimeToWarn(ref _warnedFull))
                    {
                        ConnectionLimitLog.Reached(_logger, _max);
                    }
                    return null;
                }
                // The idle connection's place goes to the new one: the count stays.
                Forget(idle.Source);
            }
            else
            {
                Volatile.Write(ref _open, _open + 1);
            }
            if (!_sources.TryGetValue(address, out var source))
            {
                source = new Source(address);
                _sources.Add(address, source);
            }
            lease = new ConnectionLease(this, source);
            source.Add(lease);
        }
        if (idle is not null)
        {
            Interlocked.Increment(ref _closedIdle);
            if (TimeToWarn(ref _warnedClosing))
            {
                ConnectionLimitLog.ClosingIdle(_logger, _max, idle.Source.Address.ToString());
            }
            idle.CloseIdle();
        }
        return lease;
    }

    /// <summary>
    /// The HTTP server's connection middleware: counts the connection (or takes over the count of one the relay handed
    /// on), closes it before any byte is read when no room can be made, and follows its requests so it can be told idle.
    /// </summary>
    public ConnectionDelegate Middleware(ConnectionDelegate next) => async connection =>
    {
        var lease = connection.Features.Get<ConnectionLease>() ?? TryOpen(connection.RemoteEndPoint);
        if (lease is null)
        {
            return; // the server closes a connection whose middleware returned
        }
        var requests = new ServerConnection(connection, _time);
        connection.Features.Set(requests);
        lease.Attach(requests);
        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            lease.Close();
        }
    };

    /// <summary>
    /// First in the HTTP server's request pipeline: marks the request's connection busy until the request ends, so it is
    /// not closed as idle under it.
    /// </summary>
    public static RequestDelegate Requests(RequestDelegate next) => context =>
    {
        if (context.Features.Get<ServerConnection>() is not { } connection)
        {
            return next(context);
        }
        connection.RequestStarted();
        return RequestEnd.After(next, context, static state => ((ServerConnection)state).RequestEnded(), connection);
    };

    internal void Release(ConnectionLease lease)
    {
        lock (_lock)
        {
            if (!lease.Remove())
            {
                return; // closed already, or taken as idle (its place went to a new connection)
            }
            Forget(lease.Source);
            Volatile.Write(ref _open, _open - 1);
        }
    }

    /// <summary>Under the lock: a source left with no connection is dropped, so addresses seen once are not kept.</summary>
    private void Forget(Source source)
    {
        if (source.Count == 0)
        {
            _sources.Remove(source.Address);
        }
    }

    /// <summary>Source addresses with connections open now.</summary>
    internal int Sources
    {
        get
        {
            lock (_lock)
            {
                return _sources.Count;
            }
        }
    }

    /// <summary>
    /// Under the lock: the connection to close for a new one, out of the count and its source's list; null when none is
    /// idle long enough. The source holding the most connections is looked at first, found in one pass over the sources;
    /// only when it has none idle does a second pass find the source holding most that has one. No sorting, and nothing
    /// allocated. A look over every source that finds none idle is not repeated for <see cref="SearchAgainAfter"/>, so
    /// connections arriving at a bound of busy ones cost one such look each 100 ms, not one each, however many sources
    /// there are.
    /// </summary>
    private ConnectionLease? TakeIdle()
    {
        var now = _time.GetTimestamp();
        if (now < _searchAgainAt)
        {
            return null;
        }
        Source? most = null;
        foreach (var source in _sources.Values)
        {
            if (most is null || source.Count > most.Count)
            {
                most = source;
            }
        }
        if (most is null)
        {
            return null;
        }
        if (most.TakeIdle() is { } first)
        {
            return first;
        }
        // Of the others, the one holding most that has a connection idle long enough; a source holding no more than the
        // best found so far is not looked into.
        Source? best = null;
        ConnectionLease? candidate = null;
        foreach (var source in _sources.Values)
        {
            if (!ReferenceEquals(source, most) && (best is null || source.Count > best.Count) && source.LongestIdle() is { } idle)
            {
                best = source;
                candidate = idle;
            }
        }
        if (candidate is null)
        {
            _searchAgainAt = now + (long)(SearchAgainAfter.TotalSeconds * _time.TimestampFrequency);
            return null;
        }
        return Source.Take(candidate);
    }

    /// <summary>True at most once every <see cref="WarnEvery"/> for the same <paramref name="warned"/>, so a flood is said once.</summary>
    private static bool TimeToWarn(ref long warned)
    {
        var now = Environment.TickCount64;
        var last = Volatile.Read(ref warned);
        return now - last >= WarnEvery && Interlocked.CompareExchange(ref warned, now, last) == last;
    }

    /// <summary>The connections open from one address.</summary>
    internal sealed class Source(IPAddress address)
    {
        private readonly List<ConnectionLease> _leases = [];
        private int _next;

        public IPAddress Address { get; } = address;

        public int Count => _leases.Count;

        public void Add(ConnectionLease lease)
        {
            lease.Index = _leases.Count;
            _leases.Add(lease);
        }

        /// <summary>Takes a lease out of the list by moving the last one into its place; true when it was in it.</summary>
        public bool Remove(ConnectionLease lease)
        {
            var at = lease.Index;
            if (at < 0)
            {
                return false;
            }
            var last = _leases[^1];
            _leases[at] = last;
            last.Index = at;
            _leases.RemoveAt(_leases.Count - 1);
            lease.Index = -1;
            return true;
        }

        /// <summary>The connection idle longest of up to <see cref="LookAt"/> of this source's, taken out; null when none is idle long enough.</summary>
        public ConnectionLease? TakeIdle() => LongestIdle() is { } lease ? Take(lease) : null;

        /// <summary>
        /// The connection idle longest of up to <see cref="LookAt"/> of this source's, from where the last look ended;
        /// null when none is idle long enough.
        /// </summary>
        public ConnectionLease? LongestIdle()
        {
            ConnectionLease? longest = null;
            var longestIdle = MinIdle;
            var count = Math.Min(LookAt, _leases.Count);
            for (var i = 0; i < count; i++)
            {
                var lease = _leases[(_next + i) % _leases.Count];
                var idle = lease.IdleFor();
                if (idle >= longestIdle)
                {
                    longest = lease;
                    longestIdle = idle;
                }
            }
            _next = _leases.Count == 0 ? 0 : (_next + count) % _leases.Count;
            return longest;
        }

        /// <summary>Takes <paramref name="lease"/>'s connection as idle and out of its source's list; null when it is no longer idle.</summary>
        public static ConnectionLease? Take(ConnectionLease lease)
        {
            if (!lease.TryClaimIdle())
            {
                return null;
            }
            lease.Remove();
            return lease;
        }
    }
}

/// <summary>A connection the runtime can close to make room for a new one while it is idle.</summary>
public interface IIdleConnection
{
    /// <summary>How long it has been idle; zero while it has a request.</summary>
    TimeSpan IdleFor();

    /// <summary>Takes it as idle, if it still is: no request it starts from now on is served.</summary>
    bool TryClaimIdle();

    /// <summary>Closes it.</summary>
    void Close();
}

/// <summary>One open client connection's place under the bound.</summary>
public sealed class ConnectionLease
{
    private readonly ConnectionLimit _limit;
    private volatile IIdleConnection? _connection;

    internal ConnectionLease(ConnectionLimit limit, ConnectionLimit.Source source)
    {
        _limit = limit;
        Source = source;
    }

    internal ConnectionLimit.Source Source { get; }

    /// <summary>Its place in its source's list; -1 once out of it.</summary>
    internal int Index { get; set; }

    /// <summary>The connection that holds the lease now (none while it passes from the relay to the server).</summary>
    public void Attach(IIdleConnection? connection) => _connection = connection;

    /// <summary>The connection ended: its place is free. Idempotent.</summary>
    public void Close() => _limit.Release(this);

    internal TimeSpan IdleFor() => _connection?.IdleFor() ?? TimeSpan.Zero;

    internal bool TryClaimIdle() => _connection?.TryClaimIdle() ?? false;

    internal bool Remove() => Source.Remove(this);

    internal void CloseIdle() => _connection?.Close();
}

/// <summary>A connection of the HTTP server, idle while none of its requests is in flight.</summary>
internal sealed class ServerConnection(ConnectionContext connection, TimeProvider time) : IIdleConnection
{
    /// <summary>Requests in flight; -1 once taken as idle.</summary>
    private int _requests;
    private long _idleSince = time.GetTimestamp();

    public void RequestStarted() => Interlocked.Increment(ref _requests);

    public void RequestEnded()
    {
        // The time first: a connection seen with no request is then seen idle since now, not since before this one.
        Volatile.Write(ref _idleSince, time.GetTimestamp());
        Interlocked.Decrement(ref _requests);
    }

    public TimeSpan IdleFor() => Volatile.Read(ref _requests) == 0 ? time.GetElapsedTime(Volatile.Read(ref _idleSince)) : TimeSpan.Zero;

    public bool TryClaimIdle() => Interlocked.CompareExchange(ref _requests, -1, 0) == 0;

    public void Close() => connection.Abort(new ConnectionAbortedException("closed while idle to make room for a new connection at the bound on open connections"));
}

internal static partial class ConnectionLimitLog
{
    [LoggerMessage(2157, LogLevel.Warning, "{Max} client connections are open, the runtime's bound (--max-connections), and none is idle: new connections are closed at once until some end (said at most every 10 s)")]
    public static partial void Reached(ILogger logger, int max);

    [LoggerMessage(2158, LogLevel.Warning, "{Max} client connections are open, the runtime's bound (--max-connections): idle ones are closed to make room for new ones, taken from the address holding the most ({Source} now; said at most every 10 s)")]
    public static partial void ClosingIdle(ILogger logger, int max, string source);
}
