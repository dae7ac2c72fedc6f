using System.Buffers;
using System.Threading.Tasks.Sources;

namespace SharedRuntime.Http.Relay.H2;

/// <summary>
/// One relayed call's stream on an <see cref="H2Connection"/>: the connection's reader hands it the answer's head and
/// body as they come, and the call takes them as its caller can. What the stream holds unread is bounded by the window
/// the relay gives it, which opens again only as the call takes what came.
/// </summary>
internal sealed class H2Stream : IValueTaskSource<bool>
{
    private readonly H2Connection _connection;
    private readonly Lock _lock = new();
    private ManualResetValueTaskSourceCore<bool> _signal;
    private bool _waiting;
    private byte[]? _head;
    private int _headLength;
    private byte[]? _data;
    private int _dataStart;
    private int _dataEnd;
    private bool _ended;
    private bool _endedByApp;
    private string? _failure;
    private bool _retryable;
    private bool _disposed;

    public H2Stream(H2Connection connection, int id, long sendWindow)
    {
        _connection = connection;
        Id = id;
        SendWindow = sendWindow;
    }

    public int Id { get; }

    /// <summary>The request is a HEAD: its answer has no body, whatever its headers say.</summary>
    public bool ToHead { get; init; }

    // Under the connection's lock:
    public long SendWindow { get; set; }

    public byte[]? PendingBody { get; set; }

    public int BodySent { get; set; }

    /// <summary>Bytes the call took since the stream's window was last opened again; the call's own.</summary>
    public int Unacknowledged { get; set; }

    /// <summary>True once the app's headers came: a stream that fails after that cannot be tried again.</summary>
    public bool Heard { get; private set; }

    /// <summary>Whether the final headers came (the reader's own view: trailers follow them).</summary>
    public bool HeadersDone { get; private set; }

    // From the connection's reader.

    /// <summary>The app's final headers, made into an HTTP/1.1 head; its stream ended with them when <paramref name="endStream"/>.</summary>
    public void OnHeaders(ReadOnlySpan<byte> head, string? problem, bool endStream)
    {
        lock (_lock)
        {
            HeadersDone = true;
            Heard = true;
            if (_disposed)
            {
                return;
            }
            if (problem is not null)
            {
                _failure ??= $"the app's answer is not valid HTTP: {problem}";
            }
            else
            {
                _head = ArrayPool<byte>.Shared.Rent(head.Length);
                head.CopyTo(_head);
                _headLength = head.Length;
            }
            _ended |= endStream;
            _endedByApp |= endStream;
        }
        Wake();
    }

    /// <summary>Part of the answer's body; a problem when the app sent more than the stream's window.</summary>
    public string? OnData(ReadOnlySpan<byte> data, int padding, bool endStream)
    {
        lock (_lock)
        {
            _endedByApp |= endStream;
            if (_disposed || _failure is not null)
            {
                return null;
            }
            var held = _dataEnd - _dataStart;
            if (held + data.Length + padding > H2Connection.StreamWindow)
            {
                return "more of an answer than the stream's window";
            }
            if (data.Length > 0)
            {
                _data ??= ArrayPool<byte>.Shared.Rent(H2Connection.StreamWindow);
                if (_dataEnd + data.Length > _data.Length)
                {
                    _data.AsSpan(_dataStart, held).CopyTo(_data);
                    _dataStart = 0;
                    _dataEnd = held;
                }
                data.CopyTo(_data.AsSpan(_dataEnd));
                _dataEnd += data.Length;
            }
            _ended |= endStream;
        }
        if (padding > 0)
        {
            _connection.Consumed(this, padding);
        }
        Wake();
        return null;
    }

    /// <summary>The app ended the stream with trailers (which are dropped).</summary>
    public void OnEnd()
    {
        lock (_lock)
        {
            _ended = true;
            _endedByApp = true;
        }
        Wake();
    }

    /// <summary>
    /// The stream cannot go on: reset by the app, its connection gone, or given up by the call. <paramref name="retryable"/>
    /// when the app surely did not handle the request.
    /// </summary>
    public void Fail(string reason, bool retryable) => Fail(reason, retryable, byApp: true);

    private void Fail(string reason, bool retryable, bool byApp)
    {
        lock (_lock)
        {
            if (_failure is not null || _ended)
            {
                return; // an answer already whole is not failed by what comes after it
            }
            _failure = reason;
            _retryable = retryable;
            _endedByApp |= byApp;
        }
        Wake();
    }

    private void Wake()
    {
        lock (_lock)
        {
            if (!_waiting)
            {
                return;
            }
            _waiting = false;
        }
        // The call's continuation runs here, on the reader's thread, until it next waits: as an event loop would.
        _signal.SetResult(true);
    }

    // From the call.

    /// <summary>Why the stream failed, once it did; whether the request may be sent again elsewhere.</summary>
    public string? Failure(out bool retryable)
    {
        lock (_lock)
        {
            retryable = _retryable;
            return _failure;
        }
    }

    /// <summary>The head, once the final headers came, and whether the stream ended with it.</summary>
    public ReadOnlySpan<byte> Head(out bool ended)
    {
        lock (_lock)
        {
            ended = _ended && _dataEnd == _dataStart;
            return _head.AsSpan(0, _headLength);
        }
    }

    /// <summary>Waits until the final headers came or the stream failed.</summary>
    public ValueTask WaitForHeadersAsync() => WaitAsync(headers: true);

    /// <summary>Waits until there is body to take, the stream ended, or it failed.</summary>
    public ValueTask WaitForDataAsync() => WaitAsync(headers: false);

    private async ValueTask WaitAsync(bool headers)
    {
        while (true)
        {
            short version;
            lock (_lock)
            {
                if (_failure is not null || (headers ? _head is not null : _dataEnd > _dataStart || _ended))
                {
                    return;
                }
                _signal.Reset();
                _waiting = true;
                version = _signal.Version;
            }
            await new ValueTask<bool>(this, version).ConfigureAwait(false);
        }
    }

    /// <summary>Bytes of body there to take now.</summary>
    public int Available
    {
        get
        {
            lock (_lock)
            {
                return _dataEnd - _dataStart;
            }
        }
    }

    /// <summary>Copies what body there is (at most <paramref name="into"/>'s length); ended once all of it is taken and the app ended the stream.</summary>
    public int Take(Span<byte> into, out bool ended)
    {
        int taken;
        lock (_lock)
        {
            taken = Math.Min(into.Length, _dataEnd - _dataStart);
            if (taken > 0)
            {
                _data.AsSpan(_dataStart, taken).CopyTo(into);
                _dataStart += taken;
            }
            ended = _ended && _dataEnd == _dataStart && _failure is null;
        }
        if (taken > 0)
        {
            _connection.Consumed(this, taken);
        }
        return taken;
    }

    /// <summary>
    /// Ends the call's use of the stream: one the app had not ended is reset (the app stops working on it), and what the
    /// stream held goes back to the pool.
    /// </summary>
    public void Dispose()
    {
        bool reset;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            reset = !_endedByApp;
            if (_head is not null)
            {
                ArrayPool<byte>.Shared.Return(_head);
                _head = null;
            }
            if (_data is not null)
            {
                ArrayPool<byte>.Shared.Return(_data);
                _data = null;
            }
            _dataStart = _dataEnd = 0;
        }
        if (reset)
        {
            _connection.Reset(this);
        }
    }

    /// <summary>A call given up (its timeout, or its caller gone) ends its wait.</summary>
    public void Cancel(string reason) => Fail(reason, retryable: false, byApp: false);

    bool IValueTaskSource<bool>.GetResult(short token) => _signal.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => _signal.GetStatus(token);

    void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _signal.OnCompleted(continuation, state, token, flags);
}
