using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace SharedRuntime.Http.Relay;

/// <summary>
/// The transport of the Dapr HTTP port when the invoke relay is on: the runtime accepts the connections itself, relays
/// the invocations it can (<see cref="InvokeRelay"/>) and hands every other connection, with what it already read of
/// it, to the HTTP server. The other listeners use the server's own socket transport.
/// </summary>
internal sealed class RelayTransportFactory(IOptions<SocketTransportOptions> options, ListenerPorts ports, InvokeRelay relay, ConnectionLimit limit, ILoggerFactory loggers)
    : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    public bool CanBind(EndPoint endpoint) => relay.Enabled && endpoint is IPEndPoint ip && ip.Port == ports.DaprHttp;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        var transport = options.Value;
        var socket = transport.CreateBoundListenSocket(endpoint);
        socket.Listen(transport.Backlog);
        var handOff = new SocketConnectionContextFactory(new SocketConnectionFactoryOptions
        {
            IOQueueCount = transport.IOQueueCount,
            WaitForDataBeforeAllocatingBuffer = transport.WaitForDataBeforeAllocatingBuffer,
            MaxReadBufferSize = transport.MaxReadBufferSize,
            MaxWriteBufferSize = transport.MaxWriteBufferSize,
            UnsafePreferInlineScheduling = transport.UnsafePreferInlineScheduling,
        }, loggers.CreateLogger("Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets"));
        var listener = new RelayListener(socket, handOff, relay, limit);
        listener.Start();
        return ValueTask.FromResult<IConnectionListener>(listener);
    }
}

/// <summary>
/// Accepts on one listen socket: each connection starts with the relay, and goes to the HTTP server (through
/// <see cref="AcceptAsync"/>) at its first request the relay does not take. Connections the relay keeps are closed
/// after <see cref="InvokeRelay.KeepAliveTimeout"/> idle, as the server's own are.
/// </summary>
internal sealed class RelayListener : IConnectionListener
{
    private readonly Socket _listenSocket;
    private readonly SocketConnectionContextFactory _handOff;
    private readonly InvokeRelay _relay;
    private readonly Channel<ConnectionContext> _handed = Channel.CreateUnbounded<ConnectionContext>(new UnboundedChannelOptions { SingleReader = true });
    private readonly HashSet<RelayConnection> _connections = [];
    private readonly ITimer _sweep;
    private readonly Lock _sweepLock = new();
    private RelayConnection[] _swept = [];
    private readonly TaskCompletionSource _idle = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _stopped;
    private LoopSocket? _listening;
    private readonly ConnectionLimit _limit;

    public RelayListener(Socket listenSocket, SocketConnectionContextFactory handOff, InvokeRelay relay, ConnectionLimit limit)
    {
        _limit = limit;
        _listenSocket = listenSocket;
        _handOff = handOff;
        _relay = relay;
        EndPoint = listenSocket.LocalEndPoint!;
        _sweep = relay.Time.CreateTimer(static state => ((RelayListener)state!).Sweep(), this, InvokeRelay.SweepInterval, InvokeRelay.SweepInterval);
    }

    public EndPoint EndPoint { get; }

    /// <summary>True once the server stopped taking connections: relayed connections close after their answer.</summary>
    public bool Stopped => _stopped;

    public void Start() => _ = AcceptLoopAsync();

    /// <summary>
    /// Accepts on a loop: each readable event of the listening socket is followed, on the loop's thread, by accepts until
    /// none is waiting, so a new connection costs no hand-off between threads before its first bytes are read.
    /// </summary>
    private async Task AcceptLoopAsync()
    {
        LoopSocket listening;
        try
        {
            listening = SocketLoops.Shared.Add(_listenSocket, writable: false);
        }
        catch (SocketException)
        {
            await AcceptAsyncLoopAsync().ConfigureAwait(false);
            return;
        }
        lock (_connections)
        {
            _listening = listening;
            if (_stopped)
            {
                listening.Abort();
                return;
            }
        }
        var failing = false;
        while (true)
        {
            Socket? socket;
            try
            {
                while (!listening.TryAccept(out socket))
                {
                    await listening.WaitReadableAsync().ConfigureAwait(false);
                }
            }
            catch (ObjectDisposedException)
            {
                return; // the listener was closed (a drain, a hand-over) or stopped: connections already open go on
            }
            catch (SocketException ex) when (!_stopped && ex.SocketErrorCode != SocketError.OperationAborted)
            {
                failing = await AcceptFailedAsync(ex, failing).ConfigureAwait(false);
                continue;
            }
            catch (SocketException)
            {
                return;
            }
            failing = AcceptResumed(failing);
            Accepted(socket);
        }
    }

    private static readonly TimeSpan AcceptRetryDelay = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Out of descriptors, or the like: connections already open go on, and those that came wait in the listen queue;
    /// accepting is tried again shortly. Said once per spell, not at every try. Gives the new state of the spell (true).
    /// </summary>
    private async Task<bool> AcceptFailedAsync(SocketException error, bool failing)
    {
        if (!failing)
        {
            RelayLog.AcceptFailed(_relay.Logger, error.Message);
        }
        await Task.Delay(AcceptRetryDelay).ConfigureAwait(false);
        return true;
    }

    /// <summary>An accept succeeded: ends a spell of failures, if one was under way (false: none is now).</summary>
    private bool AcceptResumed(bool failing)
    {
        if (failing)
        {
            RelayLog.AcceptResumed(_relay.Logger);
        }
        return false;
    }

    /// <summary>
    /// Where the listening socket cannot join a loop: accepts through the socket's own asynchronous accept, with the
    /// same retry after a failure as the loop's accept.
    /// </summary>
    private async Task AcceptAsyncLoopAsync()
    {
        var failing = false;
        while (true)
        {
            Socket socket;
            try
            {
                socket = await _listenSocket.AcceptAsync().ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                return; // the listener was closed (a drain, a hand-over) or stopped: connections already open go on
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset or SocketError.Interrupted)
            {
                continue; // that connection is gone before it was taken; others may wait
            }
            catch (SocketException ex) when (!_stopped && ex.SocketErrorCode != SocketError.OperationAborted)
            {
                failing = await AcceptFailedAsync(ex, failing).ConfigureAwait(false);
                continue;
            }
            catch (SocketException)
            {
                return;
            }
            failing = AcceptResumed(failing);
            Accepted(socket);
        }
    }

    /// <summary>Starts the relay on a connection just accepted.</summary>
    private void Accepted(Socket socket)
    {
        EndPoint? remote;
        try
        {
            remote = socket.RemoteEndPoint;
        }
        catch (SocketException)
        {
            socket.Dispose(); // gone already
            return;
        }
        if (_limit.TryOpen(remote) is not { } lease)
        {
            socket.Dispose(); // past the runtime's bound on open connections, none idle: closed before a byte is read
            return;
        }
        socket.NoDelay = true;
        LoopSocket looped;
        try
        {
            looped = SocketLoops.Shared.Add(socket);
        }
        catch (SocketException)
        {
            socket.Dispose();
            lease.Close();
            return;
        }
        var connection = new RelayConnection(looped, this, _relay, lease, (remote as IPEndPoint)?.Address);
        lock (_connections)
        {
            if (_stopped)
            {
                looped.Abort();
                lease.Close();
                return;
            }
            _connections.Add(connection);
        }
        lease.Attach(connection);
        connection.Start();
    }

    /// <summary>Gives a connection to the HTTP server with the bytes already read from it; false once the server stopped.</summary>
    public bool HandOver(RelayConnection relayed, Socket socket, byte[]? alreadyRead)
    {
        // The server's count (ConnectionLimit.Middleware) takes the connection's place over: it is not counted again, so
        // it cannot be refused on the way. Meanwhile nothing can close it as idle.
        var lease = relayed.Lease;
        lease.Attach(null);
        Forget(relayed, closed: false);
        if (_stopped)
        {
            socket.Dispose();
            lease.Close();
            return false;
        }
        var connection = _handOff.Create(socket);
        if (alreadyRead is { Length: > 0 })
        {
            connection = new ReplayConnection(connection, alreadyRead);
        }
        connection.Features.Set(lease);
        if (!_handed.Writer.TryWrite(connection))
        {
            connection.Abort();
            _ = connection.DisposeAsync();
            lease.Close();
            return false;
        }
        return true;
    }

    /// <summary>A relayed connection closed (<paramref name="closed"/>: its place under the bound is free) or went to the server.</summary>
    public void Forget(RelayConnection connection, bool closed = true)
    {
        if (closed)
        {
            connection.Lease.Close();
        }
        lock (_connections)
        {
            if (!_connections.Remove(connection))
            {
                return;
            }
            if (_stopped && !_connections.Any(c => c.Busy))
            {
                _idle.TrySetResult();
            }
        }
    }

    /// <summary>
    /// Every <see cref="InvokeRelay.SweepInterval"/>: closes the connections whose time ran out. The open connections are
    /// copied into one array kept for it, not a new one each time; sweeps run one at a time.
    /// </summary>
    private void Sweep()
    {
        lock (_sweepLock)
        {
            int count;
            lock (_connections)
            {
                count = _connections.Count;
                if (_swept.Length < count)
                {
                    _swept = new RelayConnection[Math.Max(count, _swept.Length * 2)];
                }
                _connections.CopyTo(_swept);
            }
            var now = _relay.Time.GetTimestamp();
            for (var i = 0; i < count; i++)
            {
                _swept[i].CloseIfIdle(now, _stopped);
            }
            Array.Clear(_swept, 0, count);
        }
        if (_stopped)
        {
            lock (_connections)
            {
                if (!_connections.Any(c => c.Busy))
                {
                    _idle.TrySetResult();
                }
            }
        }
    }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            while (await _handed.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (_handed.Reader.TryRead(out var connection))
                {
                    return connection;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        return null;
    }

    /// <summary>
    /// The server stops taking connections: the listen socket closes, idle relayed connections close, and those with a
    /// call in flight close after its answer.
    /// </summary>
    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        Stop();
        return ValueTask.CompletedTask;
    }

    private void Stop()
    {
        lock (_connections)
        {
            _stopped = true;
        }
        // Off its loop first, failing the accept loop's wait; then closed.
        Volatile.Read(ref _listening)?.Abort();
        _listenSocket.Dispose();
        _handed.Writer.TryComplete();
        Sweep();
    }

    /// <summary>Waits (at most <see cref="InvokeRelay.StopTimeout"/>) for relayed calls in flight to be answered, then closes every connection left.</summary>
    public async ValueTask DisposeAsync()
    {
        Stop();
        try
        {
            await _idle.Task.WaitAsync(InvokeRelay.StopTimeout, _relay.Time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Calls still in flight are cut off, as the server's own are after its shutdown timeout.
        }
        _sweep.Dispose();
        RelayConnection[] left;
        lock (_connections)
        {
            left = [.. _connections];
            _connections.Clear();
        }
        foreach (var connection in left)
        {
            connection.Lease.Close();
            connection.Abort();
        }
        while (_handed.Reader.TryRead(out var connection))
        {
            connection.Features.Get<ConnectionLease>()?.Close(); // handed on, never taken by the server
            connection.Abort();
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        _handOff.Dispose();
    }
}
