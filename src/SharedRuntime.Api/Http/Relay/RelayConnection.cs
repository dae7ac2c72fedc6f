using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using SharedRuntime.AppChannel;

namespace SharedRuntime.Http.Relay;

/// <summary>
/// One client connection while the relay serves it: reads each request whole, relays the ones
/// <see cref="InvokeRelay"/> takes and hands the connection to the HTTP server at the first one it does not.
/// </summary>
internal sealed partial class RelayConnection(LoopSocket client, RelayListener listener, InvokeRelay relay, ConnectionLease lease, IPAddress? remote)
    : IIdleConnection
{
    private const int Idle = 0, Reading = 1, Relaying = 2;

    private readonly RequestHead _head = new();
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(InvokeRelay.BufferSize);
    /// <summary>Where the heads sent on are written: taken from the pool for one call, so an idle connection holds only its buffer.</summary>
    private byte[] _scratch = [];
    private CancellationTokenSource _timeout = new();
    private int _start;
    private int _end;
    private volatile int _state;
    private long _since = relay.Time.GetTimestamp();
    private RelayRoute? _route;
    private readonly LastToken _tokens = new();
    private Admission.ConnectionTurn? _turn;
    private readonly IPAddress? _remote = remote;
    private string? _clientAddress;
    private int _closed;

    /// <summary>
    /// The buffer holds the connection's first request as peeked, not yet read: handed over, the connection goes to the
    /// server untouched; relayed, those bytes are read first.
    /// </summary>
    private bool _peeked;

    private readonly byte[] _peekByte = new byte[1];
    private AppConnection? _calling;
    private volatile bool _clientGone;
    private int _watching;

    /// <summary>A call is being relayed on it.</summary>
    public bool Busy => _state == Relaying;

    /// <summary>Its place under the bound on open connections.</summary>
    public ConnectionLease Lease => lease;

    /// <summary>Idle while waiting for a request, or for the rest of one; not while a call is relayed.</summary>
    public TimeSpan IdleFor() => _state == Relaying || Volatile.Read(ref _closed) != 0 ? TimeSpan.Zero : relay.Time.GetElapsedTime(Volatile.Read(ref _since));

    /// <summary>The relay has no way to stop a request that came meanwhile: it is taken if still idle, as the sweep does.</summary>
    public bool TryClaimIdle() => _state != Relaying && Volatile.Read(ref _closed) == 0;

    void IIdleConnection.Close() => Abort();

    public void Start() => _ = RunAsync();

    private async Task RunAsync()
    {
        try
        {
            _clientAddress = _remote?.ToString() ?? "";
            if (!await PeekFirstAsync().ConfigureAwait(false))
            {
                return;
            }
            while (true)
            {
                var headLength = await ReadHeadAsync().ConfigureAwait(false);
                if (headLength <= 0)
                {
                    if (headLength == 0)
                    {
                        Close();
                    }
                    return;
                }
                if (listener.Stopped || relay.Closing || !_head.TryParse(_buffer.AsSpan(_start, _end - _start), headLength) ||
                    headLength + _head.ContentLength > _buffer.Length)
                {
                    HandOver();
                    return;
                }
                var length = headLength + _head.ContentLength;
                if (!await ReadBodyAsync(length).ConfigureAwait(false))
                {
                    Close();
                    return;
                }
                switch (await RelayAsync().ConfigureAwait(false))
                {
                    case Outcome.NotTaken:
                        HandOver();
                        return;
                    case Outcome.Close:
                        Close();
                        return;
                }
                _start += length;
                if (_start == _end)
                {
                    _start = _end = 0;
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            Close();
        }
        catch (Exception ex)
        {
            RelayLog.Failed(relay.Logger, ex);
            Close();
        }
    }

    /// <summary>
    /// Waits for the connection's first bytes and looks at them without reading them: unless they hold a whole request
    /// the relay could take, the connection goes to the server as it came (false), with nothing copied.
    /// </summary>
    private async ValueTask<bool> PeekFirstAsync()
    {
        SetState(Idle);
        int peeked;
        do
        {
            await client.WaitReadableAsync().ConfigureAwait(false);
            peeked = client.Peek(_buffer);
        }
        while (peeked < 0);
        if (peeked == 0)
        {
            Close();
            return false;
        }
        var headLength = RequestHead.FindEnd(_buffer.AsSpan(0, peeked));
        if (headLength < 0 || !_head.TryParse(_buffer.AsSpan(0, peeked), headLength) || headLength + _head.ContentLength > peeked)
        {
            HandOver();
            return false;
        }
        _peeked = true;
        _end = peeked;
        return true;
    }

    /// <summary>Reads the peeked request, which is all there, before it is relayed.</summary>
    private async ValueTask ReadPeekedAsync(int length)
    {
        _peeked = false;
        var read = 0;
        while (read < length)
        {
            var received = await client.ReceiveAsync(_buffer.AsMemory(read, length - read)).ConfigureAwait(false);
            if (received == 0)
            {
                throw new IOException("the client closed the connection");
            }
            read += received;
        }
        _end = length;
    }

    /// <summary>
    /// Reads until the buffer holds a whole request head: its length; 0 when the client closed or the connection was
    /// swept, -1 when it was handed to the server (a head larger than the buffer).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadHeadAsync()
    {
        while (true)
        {
            var end = RequestHead.FindEnd(_buffer.AsSpan(_start, _end - _start));
            if (end > 0)
            {
                return end;
            }
            if (_end - _start == _buffer.Length)
            {
                HandOver();
                return -1;
            }
            SetState(_start == _end ? Idle : Reading);
            if (!await ReceiveAsync().ConfigureAwait(false))
            {
                return 0;
            }
        }
    }

    /// <summary>Reads until the buffer holds the whole request of <paramref name="length"/> bytes; false when the client closed.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> ReadBodyAsync(int length)
    {
        while (_end - _start < length)
        {
            SetState(Reading);
            if (!await ReceiveAsync().ConfigureAwait(false))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Receives more of the client's bytes after those held, first moving them to the buffer's start if needed.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> ReceiveAsync()
    {
        if (_end == _buffer.Length)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        var received = await client.ReceiveAsync(_buffer.AsMemory(_end)).ConfigureAwait(false);
        if (received == 0)
        {
            return false;
        }
        _end += received;
        if (_state == Idle)
        {
            SetState(Reading);
        }
        return true;
    }

    private void SetState(int state)
    {
        if (_state != state)
        {
            _since = relay.Time.GetTimestamp();
            _state = state;
        }
    }

    /// <summary>From the sweep: closes the connection when it waited too long for a request, or at once when idle and the server stopped.</summary>
    public void CloseIfIdle(long now, bool stopped)
    {
        var state = _state;
        var waited = relay.Time.GetElapsedTime(Volatile.Read(ref _since), now);
        if ((state == Idle && (stopped || waited > InvokeRelay.KeepAliveTimeout)) || (state == Reading && waited > InvokeRelay.RequestTimeout))
        {
            Abort();
        }
        else if (state == Relaying && waited > InvokeRelay.ClientWatchAfter)
        {
            WatchClient(); // a watch that ended on a request sent ahead is started again
        }
    }

    /// <summary>Watches the client while a call runs, unless a watch is on already.</summary>
    private void WatchClient()
    {
        if (Interlocked.CompareExchange(ref _watching, 1, 0) == 0)
        {
            _ = WatchClientAsync();
        }
    }

    /// <summary>
    /// Waits until the client's socket is readable while a call runs: when the client closed it, the call to the app is
    /// ended (its slot freed, counted neither way by the breaker), as the HTTP API ends a call whose caller aborted. Data
    /// instead (a request sent ahead) is left for the connection to read. The wait costs no system call: the socket's
    /// last read emptied it, and the loop reports its next event. A wait that outlives its call watches the next call
    /// on the connection: a client gone then is gone for that call too.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WatchClientAsync()
    {
        bool gone;
        try
        {
            await client.WaitReadableAsync().ConfigureAwait(false);
            gone = client.Peek(_peekByte) == 0;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            gone = true;
        }
        if (gone && _state == Relaying)
        {
            _clientGone = true;
            Volatile.Read(ref _calling)?.Abort();
            Volatile.Read(ref _stream)?.Cancel("the caller went away");
        }
        Volatile.Write(ref _watching, 0);
    }

    /// <summary>Closes the socket, failing what waits on it.</summary>
    public void Abort() => client.Abort();

    private void HandOver()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }
        var alreadyRead = _end > _start && !_peeked ? _buffer.AsSpan(_start, _end - _start).ToArray() : null;
        ReturnBuffers();
        listener.HandOver(this, client.Detach(), alreadyRead);
    }

    private void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }
        client.Abort();
        ReturnBuffers();
        listener.Forget(this);
    }

    private void ReturnBuffers()
    {
        _state = Idle;
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
        _timeout.Dispose();
    }

    private enum Outcome { Relayed, NotTaken, Close }
}

internal static partial class RelayLog
{
    [LoggerMessage(2155, LogLevel.Warning, "Invoke relay: a connection failed")]
    public static partial void Failed(ILogger logger, Exception exception);

    [LoggerMessage(2154, LogLevel.Warning, "Invoke relay: accepting a connection failed, tried again every 100 ms until one is accepted: {Problem}")]
    public static partial void AcceptFailed(ILogger logger, string problem);

    [LoggerMessage(2156, LogLevel.Information, "Invoke relay: accepting connections again")]
    public static partial void AcceptResumed(ILogger logger);
}
