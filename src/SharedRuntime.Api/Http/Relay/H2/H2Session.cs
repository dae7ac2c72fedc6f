using System.Buffers.Binary;

namespace SharedRuntime.Http.Relay.H2;

/// <summary>HTTP/2's frame types and flags, as far as a client that sends one request at a time needs them.</summary>
internal static class H2Frame
{
    public const int HeaderLength = 9;

    public const byte Data = 0x0, Headers = 0x1, Priority = 0x2, ResetStream = 0x3, Settings = 0x4, PushPromise = 0x5,
        Ping = 0x6, GoAway = 0x7, WindowUpdate = 0x8, Continuation = 0x9;

    public const byte EndStream = 0x1, Ack = 0x1, EndHeaders = 0x4, Padded = 0x8, PriorityFlag = 0x20;

    /// <summary>The largest frame payload either side sends without agreeing on more: the protocol's default, which the relay never raises.</summary>
    public const int MaxPayload = 16 * 1024;

    public static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    public static void WriteHeader(Span<byte> into, int length, byte type, byte flags, int streamId)
    {
        into[0] = (byte)(length >> 16);
        into[1] = (byte)(length >> 8);
        into[2] = (byte)length;
        into[3] = type;
        into[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(into[5..], streamId & int.MaxValue);
    }

    public static int WriteWindowUpdate(Span<byte> into, int streamId, int increment)
    {
        WriteHeader(into, 4, WindowUpdate, 0, streamId);
        BinaryPrimitives.WriteInt32BigEndian(into[HeaderLength..], increment);
        return HeaderLength + 4;
    }
}

/// <summary>
/// The state of one HTTP/2 connection to an app that the relay uses as it uses an HTTP/1.1 one: one request at a time,
/// each on a new stream. It holds the header table the app's answers are decoded with, the flow-control windows both
/// ways, and control frames (acknowledgements, window updates) waiting to go out with the connection's next write.
/// </summary>
/// <remarks>
/// The app is not trusted: its settings are checked, every frame is bounded by <see cref="H2Frame.MaxPayload"/>, and any
/// breach of the protocol ends the connection (the call fails as the app's fault).
/// </remarks>
internal sealed class H2Session
{
    /// <summary>The window for the app's answer on each stream the relay opens, announced in its settings.</summary>
    public const int StreamWindow = 1024 * 1024;

    /// <summary>The whole connection's window for the app's answers, kept topped up.</summary>
    public const int ConnectionWindow = 16 * 1024 * 1024;

    /// <summary>The largest header list (names, values and 32 bytes each) an answer may carry, as for an HTTP/1.1 head.</summary>
    public const int MaxHeaderList = 16 * 1024;

    private const int DefaultWindow = 65_535;

    private readonly byte[] _control = new byte[4096];
    private int _controlLength;
    private int _receivedOnConnection;
    private int _receivedOnStream;

    public H2Session()
    {
        // The preface, the relay's settings (no push, its stream window and header list limit) and the connection window.
        var into = _control.AsSpan();
        H2Frame.Preface.CopyTo(into);
        var at = H2Frame.Preface.Length;
        H2Frame.WriteHeader(into[at..], 18, H2Frame.Settings, 0, 0);
        at += H2Frame.HeaderLength;
        at += WriteSetting(into[at..], 0x2, 0);
        at += WriteSetting(into[at..], 0x4, StreamWindow);
        at += WriteSetting(into[at..], 0x6, MaxHeaderList);
        at += H2Frame.WriteWindowUpdate(into[at..], 0, ConnectionWindow - DefaultWindow);
        _controlLength = at;
    }

    public HpackDecoder Decoder { get; } = new(4096, MaxHeaderList);

    /// <summary>The stream the next request opens; odd, rising.</summary>
    public int NextStreamId { get; private set; } = 1;

    /// <summary>What the relay may still send on the connection before the app opens its window further.</summary>
    public long SendWindow { get; private set; } = DefaultWindow;

    /// <summary>The window each new stream starts with on the relay's side, as the app's settings say.</summary>
    public long StreamSendWindow { get; private set; } = DefaultWindow;

    /// <summary>The largest frame payload the app accepts.</summary>
    public int PeerMaxFrame { get; private set; } = H2Frame.MaxPayload;

    /// <summary>The app said it is going away: no request starts on the connection after the one in flight.</summary>
    public bool GoingAway { get; private set; }

    /// <summary>The last stream the app said it would handle when it went away.</summary>
    public int LastStreamId { get; private set; } = int.MaxValue;

    /// <summary>Bytes read from the socket and not yet taken as frames: <see cref="Start"/> to <see cref="End"/> in the connection's buffer.</summary>
    public int Start { get; set; }

    public int End { get; set; }

    /// <summary>Control frames waiting to be written.</summary>
    public ReadOnlyMemory<byte> PendingControl => _control.AsMemory(0, _controlLength);

    public void ControlSent() => _controlLength = 0;

    /// <summary>Whether the connection can carry another request.</summary>
    public bool Reusable => !GoingAway && NextStreamId < int.MaxValue - 2;

    /// <summary>Takes the next stream id and starts its window accounting.</summary>
    public int OpenStream()
    {
        var id = NextStreamId;
        NextStreamId += 2;
        _receivedOnStream = 0;
        return id;
    }

    /// <summary>Takes <paramref name="length"/> bytes of the windows for a DATA frame the relay sends.</summary>
    public void Spend(int length) => SendWindow -= length;

    /// <summary>Applies the app's SETTINGS payload and queues the acknowledgement; a problem when it breaks the protocol.</summary>
    public string? ApplySettings(ReadOnlySpan<byte> payload)
    {
        if (payload.Length % 6 != 0)
        {
            return "a SETTINGS frame of a length that is not a multiple of 6";
        }
        for (var i = 0; i < payload.Length; i += 6)
        {
            var id = BinaryPrimitives.ReadUInt16BigEndian(payload[i..]);
            var value = BinaryPrimitives.ReadUInt32BigEndian(payload[(i + 2)..]);
            switch (id)
            {
                case 0x2 when value > 1:
                    return "SETTINGS_ENABLE_PUSH above 1";
                case 0x4:
                    if (value > int.MaxValue)
                    {
                        return "an initial window above 2^31-1";
                    }
                    // The change applies to streams open now, which for the relay is at most the one in flight.
                    StreamSendWindow += value - InitialWindow;
                    InitialWindow = value;
                    break;
                case 0x5:
                    if (value is < H2Frame.MaxPayload or > 16_777_215)
                    {
                        return "a SETTINGS_MAX_FRAME_SIZE outside 16384..16777215";
                    }
                    PeerMaxFrame = (int)Math.Min(value, H2Frame.MaxPayload);
                    break;
            }
        }
        Span<byte> ack = stackalloc byte[H2Frame.HeaderLength];
        H2Frame.WriteHeader(ack, 0, H2Frame.Settings, H2Frame.Ack, 0);
        return Queue(ack);
    }

    private long InitialWindow { get; set; } = DefaultWindow;

    /// <summary>A new stream's send window (the app's initial window).</summary>
    public long NewStreamWindow() => StreamSendWindow = InitialWindow;

    /// <summary>Spends a DATA frame's bytes from the stream's send window too.</summary>
    public void SpendOnStream(int length) => StreamSendWindow -= length;

    /// <summary>The app opened a window further; a problem when it overflows it.</summary>
    public string? Opened(int streamId, int currentStream, uint increment)
    {
        increment &= 0x7fffffff;
        if (increment == 0)
        {
            return streamId == 0 ? "a WINDOW_UPDATE of 0 on the connection" : null;
        }
        if (streamId == 0)
        {
            SendWindow += increment;
            return SendWindow > int.MaxValue ? "a connection window above 2^31-1" : null;
        }
        if (streamId == currentStream)
        {
            StreamSendWindow += increment;
        }
        return null;
    }

    /// <summary>Queues the answer to the app's PING.</summary>
    public string? Pong(ReadOnlySpan<byte> opaque)
    {
        Span<byte> frame = stackalloc byte[H2Frame.HeaderLength + 8];
        H2Frame.WriteHeader(frame, 8, H2Frame.Ping, H2Frame.Ack, 0);
        opaque.CopyTo(frame[H2Frame.HeaderLength..]);
        return Queue(frame);
    }

    /// <summary>The app is going away; requests on streams after <paramref name="lastStreamId"/> were not handled.</summary>
    public void GoAway(int lastStreamId)
    {
        GoingAway = true;
        LastStreamId = Math.Min(LastStreamId, lastStreamId & int.MaxValue);
    }

    /// <summary>
    /// Counts a DATA frame of the app's answer (its whole length, padding included) against the relay's windows, and queues
    /// window updates once half of either is used, so the app never waits on the relay for room.
    /// </summary>
    public string? Received(int length, int streamId, bool streamOpen)
    {
        _receivedOnConnection += length;
        if (_receivedOnConnection >= ConnectionWindow / 2)
        {
            if (QueueWindowUpdate(0, _receivedOnConnection) is { } problem)
            {
                return problem;
            }
            _receivedOnConnection = 0;
        }
        if (streamOpen)
        {
            _receivedOnStream += length;
            if (_receivedOnStream >= StreamWindow / 2)
            {
                if (QueueWindowUpdate(streamId, _receivedOnStream) is { } problem)
                {
                    return problem;
                }
                _receivedOnStream = 0;
            }
        }
        return null;
    }

    private string? QueueWindowUpdate(int streamId, int increment)
    {
        Span<byte> frame = stackalloc byte[H2Frame.HeaderLength + 4];
        H2Frame.WriteWindowUpdate(frame, streamId, increment);
        return Queue(frame);
    }

    private string? Queue(ReadOnlySpan<byte> frame)
    {
        if (_controlLength + frame.Length > _control.Length)
        {
            // Only a peer that floods the relay with PINGs or SETTINGS fills this between two writes.
            return "more PING and SETTINGS frames than the relay answers between two writes";
        }
        frame.CopyTo(_control.AsSpan(_controlLength));
        _controlLength += frame.Length;
        return null;
    }

    private static int WriteSetting(Span<byte> into, ushort id, int value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(into, id);
        BinaryPrimitives.WriteInt32BigEndian(into[2..], value);
        return 6;
    }
}
