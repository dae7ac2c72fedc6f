using System.Text;

namespace SharedRuntime.Http.Relay.H2;

/// <summary>
/// Writes a relayed request, as the relay wrote it for HTTP/1.1 (<see cref="InvokeRelay.TryWriteRequest"/>), as HTTP/2
/// frames: the request line and <c>Host</c> become pseudo-headers, names are lowercased, the hop-by-hop headers HTTP/2
/// forbids are left out, and the body goes in DATA frames. Fields are written as literals the app does not index, so
/// the relay keeps no header table of its own.
/// </summary>
internal static class H2Request
{
    private const int AuthorityName = 1, MethodGet = 2, MethodPost = 3, PathName = 4, SchemeHttp = 6;

    /// <summary>
    /// Writes the HEADERS frame (with CONTINUATION frames when the block is longer than <paramref name="maxFrame"/>) for
    /// the head of <paramref name="request"/> (through its empty line, <paramref name="headLength"/> bytes). Returns the
    /// bytes written, or -1 when they do not fit <paramref name="into"/>.
    /// </summary>
    public static int WriteHeaders(ReadOnlySpan<byte> request, int headLength, int streamId, bool endStream, int maxFrame, Span<byte> into)
    {
        if (into.Length <= H2Frame.HeaderLength)
        {
            return -1;
        }
        var block = into[H2Frame.HeaderLength..];
        var length = WriteBlock(request[..headLength], block);
        if (length < 0)
        {
            return -1;
        }
        var flags = endStream ? H2Frame.EndStream : (byte)0;
        if (length <= maxFrame)
        {
            H2Frame.WriteHeader(into, length, H2Frame.Headers, (byte)(flags | H2Frame.EndHeaders), streamId);
            return H2Frame.HeaderLength + length;
        }
        // Longer than a frame: the block is cut into a HEADERS frame and CONTINUATION frames.
        var frames = (length + maxFrame - 1) / maxFrame;
        var total = length + frames * H2Frame.HeaderLength;
        if (total > into.Length)
        {
            return -1;
        }
        var copy = block[..length].ToArray();
        var at = 0;
        for (var i = 0; i < frames; i++)
        {
            var piece = Math.Min(maxFrame, length - i * maxFrame);
            var last = i == frames - 1;
            var type = i == 0 ? H2Frame.Headers : H2Frame.Continuation;
            var frameFlags = (byte)((i == 0 ? flags : 0) | (last ? H2Frame.EndHeaders : 0));
            H2Frame.WriteHeader(into[at..], piece, type, frameFlags, streamId);
            copy.AsSpan(i * maxFrame, piece).CopyTo(into[(at + H2Frame.HeaderLength)..]);
            at += H2Frame.HeaderLength + piece;
        }
        return at;
    }

    /// <summary>Writes <paramref name="body"/> as DATA frames, the last one ending the stream; -1 when they do not fit.</summary>
    public static int WriteData(ReadOnlySpan<byte> body, int streamId, int maxFrame, Span<byte> into)
    {
        var at = 0;
        var sent = 0;
        do
        {
            var piece = Math.Min(maxFrame, body.Length - sent);
            if (at + H2Frame.HeaderLength + piece > into.Length)
            {
                return -1;
            }
            var last = sent + piece == body.Length;
            H2Frame.WriteHeader(into[at..], piece, H2Frame.Data, last ? H2Frame.EndStream : (byte)0, streamId);
            body.Slice(sent, piece).CopyTo(into[(at + H2Frame.HeaderLength)..]);
            at += H2Frame.HeaderLength + piece;
            sent += piece;
        }
        while (sent < body.Length);
        return at;
    }

    /// <summary>The header block of an HTTP/1.1 request head; -1 when it does not fit or is not one the relay wrote.</summary>
    internal static int WriteBlock(ReadOnlySpan<byte> head, Span<byte> into)
    {
        var lineEnd = head.IndexOf("\r\n"u8);
        if (lineEnd < 0)
        {
            return -1;
        }
        var line = head[..lineEnd];
        var space = line.IndexOf((byte)' ');
        var last = line.LastIndexOf((byte)' ');
        if (space <= 0 || last <= space)
        {
            return -1;
        }
        var method = line[..space];
        var target = line[(space + 1)..last];
        var at = 0;
        at = Add(at, method.SequenceEqual("GET"u8) ? HpackEncoder.WriteIndexed(MethodGet, into[at..])
            : method.SequenceEqual("POST"u8) ? HpackEncoder.WriteIndexed(MethodPost, into[at..])
            : HpackEncoder.WriteLiteralIndexedName(MethodGet, method, into[at..]));
        at = Add(at, HpackEncoder.WriteIndexed(SchemeHttp, into[at..]));
        at = Add(at, HpackEncoder.WriteLiteralIndexedName(PathName, target, into[at..]));
        Span<byte> lower = stackalloc byte[128];
        var position = lineEnd + 2;
        while (at >= 0)
        {
            var rest = head[position..];
            var end = rest.IndexOf("\r\n"u8);
            if (end <= 0)
            {
                break;
            }
            var header = rest[..end];
            position += end + 2;
            var colon = header.IndexOf((byte)':');
            if (colon <= 0)
            {
                return -1;
            }
            var name = header[..colon];
            var value = header[(colon + 1)..].Trim(" \t"u8);
            if (Ascii.EqualsIgnoreCase(name, "host"u8))
            {
                at = Add(at, HpackEncoder.WriteLiteralIndexedName(AuthorityName, value, into[at..]));
                continue;
            }
            if (IsConnectionSpecific(name, value))
            {
                continue;
            }
            var lowered = name.Length <= lower.Length ? lower[..name.Length] : new byte[name.Length];
            Ascii.ToLower(name, lowered, out _);
            at = Add(at, HpackEncoder.WriteLiteral(lowered, value, into[at..]));
        }
        return at;

        static int Add(int at, int written) => at < 0 || written < 0 ? -1 : at + written;
    }

    /// <summary>Headers that name or shape the HTTP/1.1 connection, which HTTP/2 does not allow (RFC 9113, 8.2.2).</summary>
    private static bool IsConnectionSpecific(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) =>
        Ascii.EqualsIgnoreCase(name, "connection"u8) || Ascii.EqualsIgnoreCase(name, "keep-alive"u8) ||
        Ascii.EqualsIgnoreCase(name, "proxy-connection"u8) || Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8) ||
        Ascii.EqualsIgnoreCase(name, "upgrade"u8) || Ascii.EqualsIgnoreCase(name, "http2-settings"u8) ||
        (Ascii.EqualsIgnoreCase(name, "te"u8) && !Ascii.EqualsIgnoreCase(value, "trailers"u8));
}
