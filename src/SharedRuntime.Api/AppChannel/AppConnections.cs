using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;
using SharedRuntime.Http.Relay;
using SharedRuntime.Http.Relay.H2;

namespace SharedRuntime.AppChannel;

/// <summary>
/// An app channel's own HTTP/1.1 connections for relayed invocations (<see cref="Http.Relay.InvokeRelay"/>): plain TCP to
/// the app's endpoint, kept open between calls. A connection is taken only by a call holding one of the channel's
/// slots, so there are never more than the channel's <c>maxConcurrency</c>; one idle longer than
/// <see cref="IdleTimeout"/> is closed when the pool is next used, and all of them when the channel is retired.
/// </summary>
internal sealed class AppConnections : IDisposable
{
    /// <summary>Bytes each connection holds for what the app answers, and the largest response head it may send.</summary>
    public const int BufferSize = 16 * 1024;

    /// <summary>As long as the channel's other connections stay idle before they are closed.</summary>
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Time allowed to open a connection to the app, as for the channel's other connections.</summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(5);

    private readonly EndPoint _endPoint;
    private readonly int _port;
    private readonly List<AppConnection> _idle = [];
    /// <summary>HTTP/2 connections one app is given at most (each carries up to <see cref="H2Connection.MaxStreams"/> calls).</summary>
    public const int MaxHttp2Connections = 64;

    private readonly List<H2Connection> _http2 = [];
    private Task<H2Connection>? _connecting;
    private readonly TimeProvider _time;
    private bool _disposed;

    /// <summary>The channel's <c>maxConcurrency</c>: the HTTP/1.1 connections open at once (busy and idle) stay within it.</summary>
    private readonly int _maxConnections;

    private int _open;

    /// <summary>HTTP/1.1 connections open now (and being opened), busy or idle.</summary>
    public int Open => Volatile.Read(ref _open);

    public AppConnections(Uri endpoint, TimeProvider time, bool http2 = false, int maxConnections = int.MaxValue)
    {
        _time = time;
        Http2 = http2;
        _maxConnections = maxConnections;
        _endPoint = IPAddress.TryParse(endpoint.IdnHost, out var address)
            ? new IPEndPoint(address, endpoint.Port)
            : new DnsEndPoint(endpoint.IdnHost, endpoint.Port);
        _port = endpoint.Port;
        HostLine = Encoding.ASCII.GetBytes($"Host: {endpoint.Authority}\r\n");
        BasePath = Encoding.ASCII.GetBytes(endpoint.AbsolutePath.TrimEnd('/'));
        Authority = endpoint.Authority;
    }

    /// <summary>The request's <c>Host</c> header line, as the app's URL names it.</summary>
    public byte[] HostLine { get; }

    /// <summary>The path of the app's URL without its trailing slash (usually empty): the method path follows it.</summary>
    public byte[] BasePath { get; }

    /// <summary>The app's host and port, for messages.</summary>
    public string Authority { get; }

    /// <summary>Whether the app speaks HTTP/2 without TLS (h2c): calls are then streams on a few shared connections.</summary>
    public bool Http2 { get; }

    /// <summary>
    /// A stream for the request in <paramref name="request"/> on one of the app's HTTP/2 connections with room for it,
    /// opened when none has. The problem instead when the app cannot be reached or the request cannot be sent.
    /// </summary>
    public async ValueTask<(H2Stream? Stream, string? Problem)> OpenStreamAsync(ReadOnlyMemory<byte> request, int headLength, bool toHead, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            Task<H2Connection> connecting;
            lock (_idle)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                var now = _time.GetTimestamp();
                for (var i = _http2.Count - 1; i >= 0; i--)
                {
                    var connection = _http2[i];
                    if (!connection.Open || (connection.Streams == 0 && _http2.Count > 1 && _time.GetElapsedTime(connection.IdleSince, now) > IdleTimeout))
                    {
                        // Failed, going away, or idle too long while others serve: closed once its last stream is done.
                        _http2.RemoveAt(i);
                        if (connection.Streams == 0)
                        {
                            connection.Dispose();
                        }
                        continue;
                    }
                    if (connection.TryOpen(request.Span, headLength, toHead, out var problem) is { } stream)
                    {
                        return (stream, null);
                    }
                    if (problem is not null)
                    {
                        return (null, problem);
                    }
                }
                if ((attempt > 0 && _connecting is null) || _http2.Count >= MaxHttp2Connections)
                {
                    // The connection just made took no stream (it failed at once, or the app allows none), or the app
                    // keeps so few streams open on each that it would take more connections than any app is given.
                    return (null, "the app's HTTP/2 connections take no more streams");
                }
                // Calls that find every connection full wait for one new connection together, rather than each open one.
                connecting = _connecting ??= ConnectH2Async();
            }
            try
            {
                await connecting.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                lock (_idle)
                {
                    if (_connecting == connecting && connecting.IsCompleted)
                    {
                        _connecting = null;
                    }
                }
            }
        }
    }

    private async Task<H2Connection> ConnectH2Async()
    {
        try
        {
            var opened = new H2Connection(await ConnectSocketAsync(CancellationToken.None).ConfigureAwait(false), _time);
            lock (_idle)
            {
                if (_disposed)
                {
                    opened.Dispose();
                    throw new ObjectDisposedException(nameof(AppConnections));
                }
                _http2.Add(opened);
            }
            return opened;
        }
        finally
        {
            lock (_idle)
            {
                _connecting = null;
            }
        }
    }

    /// <summary>
    /// An idle connection, the most recently used first, or null when the caller should open one. With
    /// <paramref name="near"/> (the loop of the caller's socket), only one on that loop, unless the connections open
    /// already reach the channel's <c>maxConcurrency</c>: a new one on the caller's loop is then worth more than one
    /// idle on another, whose every event would cross to that loop's thread and back.
    /// </summary>
    public AppConnection? TakeIdle(SocketLoop? near = null)
    {
        lock (_idle)
        {
            var count = _idle.Count;
            if (count == 0)
            {
                return null;
            }
            var at = count - 1;
            if (near is not null)
            {
                while (at >= 0 && _idle[at].Socket.Loop != near)
                {
                    at--;
                }
                if (at < 0)
                {
                    if (_open < _maxConnections)
                    {
                        return null;
                    }
                    at = count - 1;
                }
            }
            var connection = _idle[at];
            _idle.RemoveAt(at);
            return connection;
        }
    }

    /// <summary>
    /// Opens a new connection to the app, on <paramref name="near"/> when given (the loop of the caller's socket);
    /// throws <see cref="SocketException"/> or <see cref="OperationCanceledException"/>.
    /// </summary>
    public async ValueTask<AppConnection> ConnectAsync(CancellationToken cancellationToken, SocketLoop? near = null)
    {
        // Counted from the start, so that calls deciding at once between opening and taking one idle elsewhere see it.
        Interlocked.Increment(ref _open);
        try
        {
            return new AppConnection(await ConnectSocketAsync(cancellationToken, near).ConfigureAwait(false), this);
        }
        catch
        {
            Closed();
            throw;
        }
    }

    /// <summary>A connection <see cref="ConnectAsync"/> opened was closed.</summary>
    internal void Closed() => Interlocked.Decrement(ref _open);

    private async ValueTask<LoopSocket> ConnectSocketAsync(CancellationToken cancellationToken, SocketLoop? near = null)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ConnectTimeout);
        var addresses = _endPoint is IPEndPoint ip
            ? [ip.Address]
            : await Dns.GetHostAddressesAsync(((DnsEndPoint)_endPoint).Host, timeout.Token).ConfigureAwait(false);
        SocketException? failed = null;
        foreach (var address in addresses)
        {
            try
            {
                return await ConnectAsync(new IPEndPoint(address, _port), near, timeout.Token).ConfigureAwait(false);
            }
            catch (SocketException ex)
            {
                failed = ex;
            }
        }
        throw failed ?? new SocketException((int)SocketError.HostNotFound);
    }

    /// <summary>
    /// Connects without blocking and waits on the socket's loop until the connection is made: the relay's sockets
    /// are only ever driven by <see cref="Http.Relay.SocketLoops"/>.
    /// </summary>
    private static async ValueTask<LoopSocket> ConnectAsync(IPEndPoint endPoint, SocketLoop? near, CancellationToken cancellationToken)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, Blocking = false };
        bool connected;
        try
        {
            connected = LoopSocket.StartConnect(socket, endPoint);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        LoopSocket looped;
        try
        {
            looped = SocketLoops.Shared.Add(socket, writable: connected, on: near);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        try
        {
            if (!connected)
            {
                using (cancellationToken.UnsafeRegister(static state => ((LoopSocket)state!).Abort(), looped))
                {
                    await looped.WaitWritableAsync().ConfigureAwait(false);
                }
                var error = (SocketError)(int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error)!;
                if (error != SocketError.Success)
                {
                    throw new SocketException((int)error);
                }
            }
            return looped;
        }
        catch (SocketException) when (cancellationToken.IsCancellationRequested)
        {
            looped.Abort();
            throw new OperationCanceledException(cancellationToken);
        }
        catch
        {
            looped.Abort();
            throw;
        }
    }

    /// <summary>Keeps a connection whose last answer was read to its end for the next call; closes those idle too long.</summary>
    public void Return(AppConnection connection)
    {
        var now = _time.GetTimestamp();
        connection.IdleSince = now;
        lock (_idle)
        {
            if (_disposed)
            {
                connection.Dispose();
                return;
            }
            // The oldest are first: close those idle longer than the timeout.
            var stale = 0;
            while (stale < _idle.Count && _time.GetElapsedTime(_idle[stale].IdleSince, now) > IdleTimeout)
            {
                _idle[stale].Dispose();
                stale++;
            }
            if (stale > 0)
            {
                _idle.RemoveRange(0, stale);
            }
            _idle.Add(connection);
        }
    }

    public void Dispose()
    {
        lock (_idle)
        {
            _disposed = true;
            foreach (var connection in _idle)
            {
                connection.Dispose();
            }
            _idle.Clear();
            foreach (var connection in _http2)
            {
                connection.Dispose();
            }
            _http2.Clear();
        }
    }
}

/// <summary>One relayed-invocation connection to an app, with the buffer its answers are read into.</summary>
internal sealed class AppConnection(LoopSocket socket, AppConnections? pool = null) : IDisposable
{
    private byte[]? _buffer = ArrayPool<byte>.Shared.Rent(AppConnections.BufferSize);

    public LoopSocket Socket { get; } = socket;

    public byte[] Buffer => _buffer ?? throw new ObjectDisposedException(nameof(AppConnection));

    /// <summary>When it was last returned to the pool.</summary>
    public long IdleSince { get; set; }

    /// <summary>Whether it served a call before this one (the app may have closed it meanwhile).</summary>
    public bool Reused { get; set; }

    /// <summary>
    /// Ends the call on this connection (given up or timed out): resets the socket, so the app's server sees the call
    /// aborted at once; a receive pending on it ends with 0, anything else pending fails. The buffer stays until
    /// <see cref="Dispose"/>.
    /// </summary>
    public void Abort() => Socket.Reset();

    public void Dispose()
    {
        Socket.Abort();
        if (Interlocked.Exchange(ref _buffer, null) is { } buffer)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            pool?.Closed();
        }
    }
}
