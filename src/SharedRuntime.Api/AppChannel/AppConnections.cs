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
    private readonly TimeProvider _time;
    private bool _disposed;

    public AppConnections(Uri endpoint, TimeProvider time, bool http2 = false)
    {
        _time = time;
        Http2 = http2;
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

    /// <summary>Whether the app speaks HTTP/2 without TLS (h2c): each connection then carries one request at a time, on its own stream.</summary>
    public bool Http2 { get; }

    /// <summary>An idle connection, the most recently used first, or null when there is none.</summary>
    public AppConnection? TakeIdle()
    {
        lock (_idle)
        {
            var count = _idle.Count;
            if (count == 0)
            {
                return null;
            }
            var connection = _idle[count - 1];
            _idle.RemoveAt(count - 1);
            return connection;
        }
    }

    /// <summary>Opens a new connection to the app; throws <see cref="SocketException"/> or <see cref="OperationCanceledException"/>.</summary>
    public async ValueTask<AppConnection> ConnectAsync(CancellationToken cancellationToken)
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
                return new AppConnection(await ConnectAsync(new IPEndPoint(address, _port), timeout.Token).ConfigureAwait(false), Http2 ? new H2Session() : null);
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
    private static async ValueTask<LoopSocket> ConnectAsync(IPEndPoint endPoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, Blocking = false };
        var connected = true;
        try
        {
            socket.Connect(endPoint);
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
        {
            connected = false;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        LoopSocket looped;
        try
        {
            looped = SocketLoops.Shared.Add(socket, writable: connected);
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
        }
    }
}

/// <summary>One relayed-invocation connection to an app, with the buffer its answers are read into.</summary>
internal sealed class AppConnection(LoopSocket socket, H2Session? h2 = null) : IDisposable
{
    // An HTTP/2 connection's buffer holds a whole frame of the largest size the relay allows, with its header.
    private byte[]? _buffer = ArrayPool<byte>.Shared.Rent(h2 is null ? AppConnections.BufferSize : H2Frame.MaxPayload + H2Frame.HeaderLength);

    public LoopSocket Socket { get; } = socket;

    /// <summary>The HTTP/2 state of a connection to an h2c app; null for HTTP/1.1.</summary>
    public H2Session? H2 { get; } = h2;

    public byte[] Buffer => _buffer ?? throw new ObjectDisposedException(nameof(AppConnection));

    /// <summary>When it was last returned to the pool.</summary>
    public long IdleSince { get; set; }

    /// <summary>Whether it served a call before this one (the app may have closed it meanwhile).</summary>
    public bool Reused { get; set; }

    /// <summary>Closes the socket, failing whatever is pending on it; the buffer stays until <see cref="Dispose"/>.</summary>
    public void Abort() => Socket.Abort();

    public void Dispose()
    {
        Socket.Abort();
        if (Interlocked.Exchange(ref _buffer, null) is { } buffer)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
