using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;

namespace SharedRuntime.Http.Relay.H2;

/// <summary>A breach of HTTP/2 by the app: the connection cannot go on, and its calls fail as the app's fault.</summary>
internal sealed class H2ProtocolException(string message) : IOException(message);

/// <summary>
/// One HTTP/2 connection to an h2c app, shared by the relayed calls to that app: each call is a stream. One reader
/// takes the app's frames in order (the header table follows them) and hands each stream its answer; writes from all
/// calls go into one buffer that is flushed as one send, so calls made together reach the app together.
/// </summary>
/// <remarks>
/// The app is not trusted. Every frame is bounded by <see cref="H2Frame.MaxPayload"/>; each stream's answer is bounded by
/// the window the relay gives it, which is only opened again as the caller takes what came; a breach of the protocol
/// ends the connection and fails its calls, which are all calls to that app. A call that times out or whose caller goes
/// away resets its own stream only.
/// </remarks>
internal sealed class H2Connection : IDisposable
{
    /// <summary>The window for the app's answer on each stream, announced in the relay's settings: what one stream may hold unread.</summary>
    public const int StreamWindow = 64 * 1024;

    /// <summary>The whole connection's window for the app's answers, topped up as frames arrive (each stream is bounded by its own).</summary>
    public const int ConnectionWindow = 16 * 1024 * 1024;

    /// <summary>The largest header list (names, values and 32 bytes each) an answer may carry, as for an HTTP/1.1 head.</summary>
    public const int MaxHeaderList = 16 * 1024;

    /// <summary>Streams one connection carries at most, whatever the app allows; the next calls open another connection.</summary>
    public const int MaxStreams = 100;

    /// <summary>
    /// Bytes written for the app and not yet taken by it past which the connection is given up: an app that stops reading
    /// its requests holds no more than this of the runtime's memory.
    /// </summary>
    public const int MaxUnsent = 1024 * 1024;

    private const int DefaultWindow = 65_535;

    private readonly LoopSocket _socket;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Dictionary<int, H2Stream> _streams = [];
    private readonly HpackDecoder _decoder = new(4096, MaxHeaderList);
    private readonly H2Answer _discard;
    private readonly H2Answer _answer;
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(H2Frame.MaxPayload + H2Frame.HeaderLength);
    private byte[] _block = ArrayPool<byte>.Shared.Rent(MaxHeaderList);
    private int _start;
    private int _end;
    private int _receivedOnConnection;

    // Under _lock:
    private byte[] _out = ArrayPool<byte>.Shared.Rent(32 * 1024);
    private byte[] _spare = ArrayPool<byte>.Shared.Rent(32 * 1024);
    private int _outLength;
    private bool _flushing;
    private int _nextStreamId = 1;
    private long _sendWindow = DefaultWindow;
    private long _initialStreamWindow = DefaultWindow;
    private int _pendingBodies;
    private long _peerMaxStreams = MaxStreams;
    private int _lastStreamId = int.MaxValue;
    private bool _goingAway;
    private string? _failure;

    public H2Connection(LoopSocket socket, TimeProvider time)
    {
        _socket = socket;
        _time = time;
        _discard = new H2Answer(new byte[MaxHeaderList]) { Discard = true };
        _answer = new H2Answer(new byte[MaxHeaderList]);
        IdleSince = time.GetTimestamp();
        // The preface, the relay's settings (no push, its stream window and header list limit) and the connection window.
        Span<byte> opening = stackalloc byte[24 + 9 + 18 + 13];
        H2Frame.Preface.CopyTo(opening);
        var at = H2Frame.Preface.Length;
        H2Frame.WriteHeader(opening[at..], 18, H2Frame.Settings, 0, 0);
        at += H2Frame.HeaderLength;
        at += WriteSetting(opening[at..], 0x2, 0);
        at += WriteSetting(opening[at..], 0x4, StreamWindow);
        at += WriteSetting(opening[at..], 0x6, MaxHeaderList);
        H2Frame.WriteWindowUpdate(opening[at..], 0, ConnectionWindow - DefaultWindow);
        lock (_lock)
        {
            Append(opening);
        }
        _ = ReadAsync();
    }

    /// <summary>When the connection last had no stream open.</summary>
    public long IdleSince { get; private set; }

    /// <summary>False once the connection failed or the app is going away: no stream opens on it any more.</summary>
    public bool Open
    {
        get
        {
            lock (_lock)
            {
                return _failure is null && !_goingAway;
            }
        }
    }

    /// <summary>Streams open now.</summary>
    public int Streams
    {
        get
        {
            lock (_lock)
            {
                return _streams.Count;
            }
        }
    }

    /// <summary>
    /// Opens a stream for the request whose HTTP/1.1 form is in <paramref name="request"/> (head through its empty line,
    /// then the body) and sends it: headers and, as far as the app's windows allow now, the body (the rest follows as
    /// they open). Null when the connection takes no more streams.
    /// </summary>
    public H2Stream? TryOpen(ReadOnlySpan<byte> request, int headLength, bool toHead, out string? problem)
    {
        problem = null;
        var body = request.Length - headLength;
        var frames = ArrayPool<byte>.Shared.Rent(2 * request.Length + 256);
        var stuck = false;
        try
        {
            lock (_lock)
            {
                if (Backlogged)
                {
                    stuck = true;
                    return null;
                }
                if (_failure is not null || _goingAway || _streams.Count >= Math.Min(_peerMaxStreams, MaxStreams) || _nextStreamId > int.MaxValue - 2)
                {
                    return null;
                }
                var id = _nextStreamId;
                var written = H2Request.WriteHeaders(request, headLength, id, endStream: body == 0, H2Frame.MaxPayload, frames);
                if (written < 0)
                {
                    problem = "the request's headers do not fit an HTTP/2 header block";
                    return null;
                }
                _nextStreamId += 2;
                var stream = new H2Stream(this, id, _initialStreamWindow) { ToHead = toHead };
                _streams.Add(id, stream);
                Append(frames.AsSpan(0, written));
                if (body > 0)
                {
                    stream.PendingBody = request[headLength..].ToArray();
                    if (!SendBody(stream))
                    {
                        _pendingBodies++;
                    }
                }
                StartFlush();
                return stream;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frames);
            if (stuck)
            {
                Fail($"the app has not taken the last {MaxUnsent} bytes written to it", retryable: true);
            }
        }
    }

    /// <summary>The caller took <paramref name="length"/> bytes of the stream's answer: its window opens again once half is taken.</summary>
    internal void Consumed(H2Stream stream, int length)
    {
        Span<byte> frame = stackalloc byte[H2Frame.HeaderLength + 4];
        lock (_lock)
        {
            stream.Unacknowledged += length;
            if (stream.Unacknowledged < StreamWindow / 2 || _failure is not null || !_streams.ContainsKey(stream.Id))
            {
                return;
            }
            H2Frame.WriteWindowUpdate(frame, stream.Id, stream.Unacknowledged);
            stream.Unacknowledged = 0;
            Append(frame);
            StartFlush();
        }
    }

    /// <summary>The call gave up on its stream (a timeout, its caller gone, or done before the app ended it): the app is told to stop.</summary>
    internal void Reset(H2Stream stream)
    {
        Span<byte> frame = stackalloc byte[H2Frame.HeaderLength + 4];
        H2Frame.WriteHeader(frame, 4, H2Frame.ResetStream, 0, stream.Id);
        BinaryPrimitives.WriteInt32BigEndian(frame[H2Frame.HeaderLength..], 0x8); // CANCEL
        lock (_lock)
        {
            if (!_streams.Remove(stream.Id))
            {
                return;
            }
            NoteIdle();
            if (_failure is null)
            {
                Append(frame);
                StartFlush();
            }
        }
        CloseIfSpent();
    }

    /// <summary>
    /// Closes the connection once the app said it goes away (GOAWAY) and no stream is left on it: it takes no new ones,
    /// and an app that does not close it itself would otherwise leave it open for good. True when closed.
    /// </summary>
    private bool CloseIfSpent()
    {
        lock (_lock)
        {
            if (!_goingAway || _streams.Count > 0 || _failure is not null)
            {
                return false;
            }
        }
        Fail("the app went away and its last call is done", retryable: false);
        return true;
    }

    private void NoteIdle()
    {
        if (_streams.Count == 0)
        {
            IdleSince = _time.GetTimestamp();
        }
    }

    public void Dispose() => Fail("the connection to the app was closed", retryable: false);

    /// <summary>Ends the connection: every stream open fails with <paramref name="reason"/>.</summary>
    private void Fail(string reason, bool retryable)
    {
        H2Stream[] streams;
        lock (_lock)
        {
            if (_failure is not null)
            {
                return;
            }
            _failure = reason;
            streams = [.. _streams.Values];
            _streams.Clear();
        }
        _socket.Abort();
        foreach (var stream in streams)
        {
            stream.Fail(reason, retryable && !stream.Heard);
        }
    }

    /// <summary>More than <see cref="MaxUnsent"/> bytes wait to go to the app (under the lock): the app is not reading.</summary>
    private bool Backlogged => _outLength > MaxUnsent;

    private void Append(ReadOnlySpan<byte> bytes)
    {
        if (_outLength + bytes.Length > _out.Length)
        {
            var larger = ArrayPool<byte>.Shared.Rent(Math.Max(_out.Length * 2, _outLength + bytes.Length));
            _out.AsSpan(0, _outLength).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_out);
            _out = larger;
        }
        bytes.CopyTo(_out.AsSpan(_outLength));
        _outLength += bytes.Length;
    }

    /// <summary>
    /// Starts sending what was appended, under the lock. On a socket loop's thread in the middle of its batch of events,
    /// the send waits for the batch's end, so that the requests of every caller the batch served go out in one write.
    /// </summary>
    private void StartFlush()
    {
        if (_flushing || _outLength == 0)
        {
            return;
        }
        _flushing = true;
        if (!SocketLoop.TryDefer(static state => _ = ((H2Connection)state).FlushAsync(), this))
        {
            _ = FlushAsync();
        }
    }

    /// <summary>Sends what was appended, and what is appended meanwhile, until nothing is left; one send at a time.</summary>
    private async Task FlushAsync()
    {
        try
        {
            while (true)
            {
                byte[] sending;
                int length;
                lock (_lock)
                {
                    if (_outLength == 0 || _failure is not null)
                    {
                        _flushing = false;
                        return;
                    }
                    (sending, _out, _spare) = (_out, _spare, _out);
                    length = _outLength;
                    _outLength = 0;
                    if (_out.Length < sending.Length)
                    {
                        ArrayPool<byte>.Shared.Return(_out);
                        _out = ArrayPool<byte>.Shared.Rent(sending.Length);
                    }
                }
                await _socket.SendAsync(sending.AsMemory(0, length)).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            lock (_lock)
            {
                _flushing = false;
            }
            Fail(ex is ObjectDisposedException ? "the connection to the app was closed" : ex.Message, retryable: true);
        }
    }

    /// <summary>Sends the bodies waiting for window, in stream order, as far as the windows now allow.</summary>
    private void SendBodies()
    {
        if (_pendingBodies == 0)
        {
            return;
        }
        // Counted again each time: a stream that left with its body unsent (reset, failed) counts no more.
        var left = 0;
        foreach (var stream in _streams.Values.Where(s => s.PendingBody is not null).OrderBy(s => s.Id))
        {
            if (!SendBody(stream))
            {
                left++; // the connection's window is spent, or this stream's: the rest when the app opens them
            }
        }
        _pendingBodies = left;
    }

    /// <summary>Sends as much of the stream's body as the windows allow; true once all of it is sent.</summary>
    private bool SendBody(H2Stream stream)
    {
        var body = stream.PendingBody!;
        Span<byte> header = stackalloc byte[H2Frame.HeaderLength];
        while (stream.BodySent < body.Length)
        {
            var piece = (int)Math.Min(Math.Min(body.Length - stream.BodySent, H2Frame.MaxPayload), Math.Min(_sendWindow, stream.SendWindow));
            if (piece <= 0)
            {
                return false;
            }
            var last = stream.BodySent + piece == body.Length;
            H2Frame.WriteHeader(header, piece, H2Frame.Data, last ? H2Frame.EndStream : (byte)0, stream.Id);
            Append(header);
            Append(body.AsSpan(stream.BodySent, piece));
            stream.BodySent += piece;
            _sendWindow -= piece;
            stream.SendWindow -= piece;
        }
        stream.PendingBody = null;
        return true;
    }

    /// <summary>Reads the app's frames until the connection ends, handing each stream its part.</summary>
    private async Task ReadAsync()
    {
        try
        {
            while (true)
            {
                var frame = await ReadFrameAsync().ConfigureAwait(false);
                if (frame.Type is H2Frame.Headers)
                {
                    var length = await ReadHeaderBlockAsync(frame).ConfigureAwait(false);
                    OnHeaders(frame, length);
                }
                else
                {
                    OnFrame(frame);
                }
                if (_goingAway && CloseIfSpent())
                {
                    return;
                }
            }
        }
        catch (Exception ex)
        {
            // A socket error or the app's breach of the protocol; anything else is a fault of the relay's own, which must
            // fail this connection's calls rather than leave them waiting.
            var retryable = ex is SocketException or ObjectDisposedException || (ex is IOException and not H2ProtocolException);
            Fail(ex is ObjectDisposedException ? "the connection to the app was closed" : ex.Message, retryable);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            ArrayPool<byte>.Shared.Return(_block);
            _buffer = [];
            _block = [];
        }
    }

    private readonly record struct Frame(byte Type, byte Flags, int StreamId, int Offset, int Length)
    {
        public bool Has(byte flag) => (Flags & flag) != 0;
    }

    /// <summary>
    /// A header block: decoded (always, as the header table follows every block) into the stream's answer when it is
    /// the final head of a stream still open, and dropped otherwise (interim answers, trailers, streams given up).
    /// </summary>
    private void OnHeaders(Frame frame, int blockLength)
    {
        var endStream = frame.Has(H2Frame.EndStream);
        H2Stream? stream;
        lock (_lock)
        {
            if (frame.StreamId == 0 || (frame.StreamId & 1) == 0 || frame.StreamId >= _nextStreamId)
            {
                throw new H2ProtocolException("the app broke HTTP/2: a HEADERS frame on a stream the relay did not open");
            }
            _streams.TryGetValue(frame.StreamId, out stream);
            if (stream is not null && endStream)
            {
                _streams.Remove(frame.StreamId);
                NoteIdle();
            }
        }
        var sink = stream is null || stream.HeadersDone ? _discard : _answer;
        sink.Reset();
        sink.Discard = sink == _discard;
        if (_decoder.Decode(_block.AsSpan(0, blockLength), sink) is { } problem)
        {
            throw new H2ProtocolException($"the app's header block cannot be decoded: {problem}");
        }
        if (stream is null)
        {
            return;
        }
        if (stream.HeadersDone)
        {
            // Trailers: dropped; they must end the stream.
            if (!endStream)
            {
                throw new H2ProtocolException("the app broke HTTP/2: headers after an answer's body that do not end its stream");
            }
            stream.OnEnd();
            return;
        }
        if (_answer.Problem is null && _answer.Status is >= 100 and < 200)
        {
            if (endStream)
            {
                throw new H2ProtocolException("the app broke HTTP/2: an interim answer that ends its stream");
            }
            return; // 100 Continue and other interim answers: the final one follows
        }
        _answer.Finish(endStream, stream.ToHead);
        stream.OnHeaders(_answer.Head, _answer.Problem, endStream);
    }

    private void OnFrame(Frame frame)
    {
        var payload = _buffer.AsSpan(frame.Offset, frame.Length);
        string? problem = null;
        switch (frame.Type)
        {
            case H2Frame.Data:
                problem = OnData(frame, payload);
                break;
            case H2Frame.ResetStream:
                if (frame.StreamId == 0 || frame.Length != 4)
                {
                    problem = "a malformed RST_STREAM frame";
                    break;
                }
                H2Stream? reset;
                lock (_lock)
                {
                    _streams.Remove(frame.StreamId, out reset);
                    NoteIdle();
                }
                var code = BinaryPrimitives.ReadUInt32BigEndian(payload);
                reset?.Fail($"the app reset the stream ({ErrorName(code)})", retryable: code == 0x7); // REFUSED_STREAM: not handled
                break;
            case H2Frame.Settings:
                if (frame.StreamId != 0)
                {
                    problem = "a SETTINGS frame on a stream";
                }
                else if (!frame.Has(H2Frame.Ack))
                {
                    problem = ApplySettings(payload);
                }
                break;
            case H2Frame.Ping:
                if (frame.StreamId != 0 || frame.Length != 8)
                {
                    problem = "a malformed PING frame";
                }
                else if (!frame.Has(H2Frame.Ack))
                {
                    Span<byte> pong = stackalloc byte[H2Frame.HeaderLength + 8];
                    H2Frame.WriteHeader(pong, 8, H2Frame.Ping, H2Frame.Ack, 0);
                    payload.CopyTo(pong[H2Frame.HeaderLength..]);
                    lock (_lock)
                    {
                        // A peer that pings faster than it reads is not answered without bound.
                        if (Backlogged)
                        {
                            problem = "more PING frames than the relay answers";
                            break;
                        }
                        Append(pong);
                        StartFlush();
                    }
                }
                break;
            case H2Frame.WindowUpdate:
                problem = frame.Length != 4 ? "a malformed WINDOW_UPDATE frame" : OnWindowUpdate(frame.StreamId, BinaryPrimitives.ReadUInt32BigEndian(payload) & 0x7fffffff);
                break;
            case H2Frame.GoAway:
                if (frame.StreamId != 0 || frame.Length < 8)
                {
                    problem = "a malformed GOAWAY frame";
                    break;
                }
                OnGoAway(BinaryPrimitives.ReadInt32BigEndian(payload) & int.MaxValue);
                break;
            case H2Frame.PushPromise:
                problem = "a PUSH_PROMISE, though push is off";
                break;
            case H2Frame.Continuation:
                problem = "a CONTINUATION frame that continues nothing";
                break;
        }
        if (problem is not null)
        {
            throw new H2ProtocolException($"the app broke HTTP/2: {problem}");
        }
    }

    private string? OnData(Frame frame, ReadOnlySpan<byte> payload)
    {
        if (frame.StreamId == 0)
        {
            return "a DATA frame on stream 0";
        }
        _receivedOnConnection += frame.Length;
        if (_receivedOnConnection >= ConnectionWindow / 2)
        {
            Span<byte> update = stackalloc byte[H2Frame.HeaderLength + 4];
            H2Frame.WriteWindowUpdate(update, 0, _receivedOnConnection);
            _receivedOnConnection = 0;
            lock (_lock)
            {
                Append(update);
                StartFlush();
            }
        }
        if (frame.Has(H2Frame.Padded))
        {
            if (payload.Length < 1 || payload[0] + 1 > payload.Length)
            {
                return "a DATA frame whose padding is longer than it";
            }
            payload = payload[1..^payload[0]];
        }
        H2Stream? stream;
        lock (_lock)
        {
            if (frame.StreamId >= _nextStreamId)
            {
                return "a DATA frame on a stream the relay did not open";
            }
            _streams.TryGetValue(frame.StreamId, out stream);
            if (stream is not null && frame.Has(H2Frame.EndStream))
            {
                _streams.Remove(frame.StreamId);
                NoteIdle();
            }
        }
        if (stream is null)
        {
            return null; // a stream the relay gave up on
        }
        if (!stream.HeadersDone)
        {
            return "an answer's body before its headers";
        }
        return stream.OnData(payload, frame.Length - payload.Length, frame.Has(H2Frame.EndStream));
    }

    private string? OnWindowUpdate(int streamId, uint increment)
    {
        lock (_lock)
        {
            if (streamId == 0)
            {
                if (increment == 0)
                {
                    return "a WINDOW_UPDATE of 0 on the connection";
                }
                _sendWindow += increment;
                if (_sendWindow > int.MaxValue)
                {
                    return "a connection window above 2^31-1";
                }
            }
            else if (_streams.TryGetValue(streamId, out var stream))
            {
                stream.SendWindow += increment;
            }
            SendBodies();
            StartFlush();
        }
        return null;
    }

    private string? ApplySettings(ReadOnlySpan<byte> payload)
    {
        if (payload.Length % 6 != 0)
        {
            return "a SETTINGS frame of a length that is not a multiple of 6";
        }
        Span<byte> ack = stackalloc byte[H2Frame.HeaderLength];
        H2Frame.WriteHeader(ack, 0, H2Frame.Settings, H2Frame.Ack, 0);
        lock (_lock)
        {
            for (var i = 0; i < payload.Length; i += 6)
            {
                var id = BinaryPrimitives.ReadUInt16BigEndian(payload[i..]);
                var value = BinaryPrimitives.ReadUInt32BigEndian(payload[(i + 2)..]);
                switch (id)
                {
                    case 0x2 when value > 1:
                        return "SETTINGS_ENABLE_PUSH above 1";
                    case 0x3:
                        _peerMaxStreams = value;
                        break;
                    case 0x4:
                        if (value > int.MaxValue)
                        {
                            return "an initial window above 2^31-1";
                        }
                        // The change applies to the streams open now as well.
                        foreach (var stream in _streams.Values)
                        {
                            stream.SendWindow += value - _initialStreamWindow;
                        }
                        _initialStreamWindow = value;
                        break;
                    case 0x5:
                        if (value is < H2Frame.MaxPayload or > 16_777_215)
                        {
                            return "a SETTINGS_MAX_FRAME_SIZE outside 16384..16777215";
                        }
                        break; // the relay's frames stay at the default size, which every peer takes
                }
            }
            // A peer that sends settings faster than it reads is not acknowledged without bound.
            if (Backlogged)
            {
                return "more SETTINGS frames than the relay answers";
            }
            Append(ack);
            SendBodies();
            StartFlush();
        }
        return null;
    }

    private void OnGoAway(int lastStreamId)
    {
        List<H2Stream> notTaken = [];
        lock (_lock)
        {
            _goingAway = true;
            _lastStreamId = Math.Min(_lastStreamId, lastStreamId);
            foreach (var (id, stream) in _streams)
            {
                if (id > _lastStreamId)
                {
                    notTaken.Add(stream);
                }
            }
            foreach (var stream in notTaken)
            {
                _streams.Remove(stream.Id);
            }
            NoteIdle();
        }
        foreach (var stream in notTaken)
        {
            stream.Fail("the app went away without taking the request", retryable: true);
        }
    }

    /// <summary>Reads a header block: the frame's fragment and its CONTINUATION frames, into the block buffer; returns its length.</summary>
    private async ValueTask<int> ReadHeaderBlockAsync(Frame frame)
    {
        var length = FirstFragment(frame);
        while (!frame.Has(H2Frame.EndHeaders))
        {
            var next = await ReadFrameAsync().ConfigureAwait(false);
            if (next.Type != H2Frame.Continuation || next.StreamId != frame.StreamId)
            {
                throw new H2ProtocolException("the app broke HTTP/2: a header block not continued by CONTINUATION frames");
            }
            if (length + next.Length > _block.Length)
            {
                throw new H2ProtocolException($"the app's response headers are longer than {MaxHeaderList} bytes");
            }
            _buffer.AsSpan(next.Offset, next.Length).CopyTo(_block.AsSpan(length));
            length += next.Length;
            frame = next;
        }
        return length;
    }

    private int FirstFragment(Frame frame)
    {
        var payload = _buffer.AsSpan(frame.Offset, frame.Length);
        var skip = 0;
        var pad = 0;
        if (frame.Has(H2Frame.Padded))
        {
            if (payload.Length < 1)
            {
                throw new H2ProtocolException("the app broke HTTP/2: a padded frame with no pad length");
            }
            pad = payload[0];
            skip = 1;
        }
        if (frame.Has(H2Frame.PriorityFlag))
        {
            skip += 5;
        }
        if (skip + pad > payload.Length)
        {
            throw new H2ProtocolException("the app broke HTTP/2: a frame whose padding is longer than it");
        }
        var fragment = payload[skip..^pad];
        fragment.CopyTo(_block);
        return fragment.Length;
    }

    /// <summary>The next frame from the app, its payload in the read buffer until the next read. A frame longer than the relay allows ends the connection.</summary>
    private async ValueTask<Frame> ReadFrameAsync()
    {
        var buffer = _buffer;
        while (true)
        {
            var have = _end - _start;
            if (have >= H2Frame.HeaderLength)
            {
                var at = _start;
                var length = (buffer[at] << 16) | (buffer[at + 1] << 8) | buffer[at + 2];
                if (length > H2Frame.MaxPayload)
                {
                    throw new H2ProtocolException($"the app broke HTTP/2: a frame of {length} bytes, above the {H2Frame.MaxPayload} allowed");
                }
                if (have >= H2Frame.HeaderLength + length)
                {
                    _start = at + H2Frame.HeaderLength + length;
                    var streamId = BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(at + 5)) & int.MaxValue;
                    return new Frame(buffer[at + 3], buffer[at + 4], streamId, at + H2Frame.HeaderLength, length);
                }
            }
            if (_start > 0)
            {
                buffer.AsSpan(_start, have).CopyTo(buffer);
                _start = 0;
                _end = have;
            }
            var received = await _socket.ReceiveAsync(buffer.AsMemory(_end)).ConfigureAwait(false);
            if (received == 0)
            {
                throw new IOException("the app closed the connection");
            }
            _end += received;
        }
    }

    private static string ErrorName(uint code) => code switch
    {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0xb => "ENHANCE_YOUR_CALM",
        _ => $"error code {code}",
    };

    private static int WriteSetting(Span<byte> into, ushort id, int value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(into, id);
        BinaryPrimitives.WriteInt32BigEndian(into[2..], value);
        return 6;
    }
}
