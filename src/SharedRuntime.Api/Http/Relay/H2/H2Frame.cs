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
