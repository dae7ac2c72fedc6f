using System.Buffers;
using System.Buffers.Text;
using System.Text;

namespace SharedRuntime.Http.Relay;

/// <summary>How the end of an app's answer is known.</summary>
internal enum BodyFraming { None, Length, Chunked, UntilClose }

/// <summary>
/// An app's response head as the relay reads it. The app is not trusted: a status line, header name or value that is
/// not what HTTP/1.1 allows (values of visible ASCII, space and tab), conflicting or repeated framing headers, or a
/// switch of protocols are a broken answer, which is the app's failure.
/// </summary>
internal readonly record struct ResponseHead(int Status, BodyFraming Framing, long ContentLength, bool KeepAlive, bool Interim, string? Problem)
{
    private static SearchValues<byte> TokenBytes => RequestHead.TokenBytes;

    private static SearchValues<byte> ValueBytes => RequestHead.ValueBytes;

    private static ResponseHead Invalid(string problem) => new(0, BodyFraming.None, 0, false, false, problem);

    /// <summary>Reads the head <paramref name="head"/> (through its empty line), the answer to a HEAD request when <paramref name="toHead"/>.</summary>
    public static ResponseHead Parse(ReadOnlySpan<byte> head, bool toHead)
    {
        var lineEnd = head.IndexOf("\r\n"u8);
        var line = head[..lineEnd];
        if (line.Length < 12 || !line.StartsWith("HTTP/1."u8) || line[7] is not ((byte)'0' or (byte)'1') || line[8] != ' ' ||
            !IsDigits(line.Slice(9, 3)) || (line.Length > 12 && line[12] != ' ') || line[12..].IndexOfAnyExcept(ValueBytes) >= 0)
        {
            return Invalid("the status line is malformed");
        }
        var status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
        if (status < 100)
        {
            return Invalid("the status code is below 100");
        }
        if (status == 101)
        {
            return Invalid("it switched protocols, which an invocation does not ask for");
        }
        var keepAlive = line[7] == '1';
        long contentLength = -1;
        var chunked = false;
        var position = lineEnd + 2;
        while (true)
        {
            var rest = head[position..];
            var end = rest.IndexOf("\r\n"u8);
            if (end == 0)
            {
                break;
            }
            var header = rest[..end];
            var colon = header.IndexOf((byte)':');
            if (colon <= 0 || header[..colon].IndexOfAnyExcept(TokenBytes) >= 0)
            {
                return Invalid("a header line is malformed");
            }
            var name = header[..colon];
            var value = header[(colon + 1)..].Trim(" \t"u8);
            if (value.IndexOfAnyExcept(ValueBytes) >= 0)
            {
                return Invalid("a header value has characters HTTP does not allow (only visible ASCII, spaces and tabs are relayed)");
            }
            if (Ascii.EqualsIgnoreCase(name, "content-length"u8))
            {
                if (contentLength >= 0 || value.Length is 0 or > 18 || !IsDigits(value) || !Utf8Parser.TryParse(value, out contentLength, out _))
                {
                    return Invalid("its Content-Length is malformed or repeated");
                }
            }
            else if (Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8))
            {
                if (chunked || !Ascii.EqualsIgnoreCase(value, "chunked"u8))
                {
                    return Invalid("its Transfer-Encoding is not chunked");
                }
                chunked = true;
            }
            else if (Ascii.EqualsIgnoreCase(name, "connection"u8))
            {
                if (Ascii.EqualsIgnoreCase(value, "close"u8) || value.IndexOf("close"u8) >= 0)
                {
                    keepAlive = false;
                }
                else if (line[7] == '0' && Ascii.EqualsIgnoreCase(value, "keep-alive"u8))
                {
                    keepAlive = true;
                }
            }
            position += end + 2;
        }
        if (chunked && contentLength >= 0)
        {
            return Invalid("it has both Content-Length and Transfer-Encoding");
        }
        var interim = status < 200;
        var framing = interim || toHead || status is 204 or 304 ? BodyFraming.None
            : chunked ? BodyFraming.Chunked
            : contentLength >= 0 ? (contentLength == 0 ? BodyFraming.None : BodyFraming.Length)
            : BodyFraming.UntilClose;
        return new ResponseHead(status, framing, Math.Max(contentLength, 0), keepAlive && framing != BodyFraming.UntilClose, interim, null);
    }

    /// <summary>
    /// Writes the head the client receives: the app's status and headers less the hop-by-hop ones, chunked framing
    /// when the app's body ends with its connection, and <c>Connection: close</c> when the client's connection closes after it.
    /// </summary>
    public int Write(ReadOnlySpan<byte> head, Span<byte> into, bool close)
    {
        var writer = new HeadWriter(into);
        var lineEnd = head.IndexOf("\r\n"u8);
        writer.Write("HTTP/1.1 "u8);
        writer.Write(head[9..(lineEnd + 2)]);
        var position = lineEnd + 2;
        while (true)
        {
            var rest = head[position..];
            var end = rest.IndexOf("\r\n"u8);
            if (end == 0)
            {
                break;
            }
            var header = rest[..(end + 2)];
            if (!IsHopByHop(header[..header.IndexOf((byte)':')]))
            {
                writer.Write(header);
            }
            position += end + 2;
        }
        if (Framing is BodyFraming.Chunked or BodyFraming.UntilClose)
        {
            writer.Write("Transfer-Encoding: chunked\r\n"u8);
        }
        if (close)
        {
            writer.Write("Connection: close\r\n"u8);
        }
        writer.Write("\r\n"u8);
        if (writer.Overflowed)
        {
            throw new InvalidDataException("the app's response head does not fit the relay's buffer");
        }
        return writer.Length;
    }

    private static bool IsHopByHop(ReadOnlySpan<byte> name) =>
        Ascii.EqualsIgnoreCase(name, "connection"u8) || Ascii.EqualsIgnoreCase(name, "keep-alive"u8) ||
        Ascii.EqualsIgnoreCase(name, "proxy-connection"u8) || Ascii.EqualsIgnoreCase(name, "te"u8) ||
        Ascii.EqualsIgnoreCase(name, "trailer"u8) || Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8) ||
        Ascii.EqualsIgnoreCase(name, "upgrade"u8);

    private static bool IsDigits(ReadOnlySpan<byte> text) => text.IndexOfAnyExceptInRange((byte)'0', (byte)'9') < 0;
}

/// <summary>
/// Follows a chunked body as it passes through, byte by byte, to find where it ends (after the last chunk and its
/// trailers). Sizes, extensions and trailers are bounded; anything malformed stops it.
/// </summary>
internal struct ChunkedScanner
{
    private const int MaxLine = 4096;
    private const int MaxTrailers = 16 * 1024;

    private State _state;
    private long _remaining;
    private int _digits;
    private int _line;
    private int _trailers;

    private enum State { Size, Extension, SizeLf, Data, DataCr, DataLf, TrailerStart, TrailerLine, TrailerLf, FinalLf, Done }

    public readonly bool Done => _state == State.Done;

    /// <summary>How many bytes of <paramref name="data"/> belong to the body (all of them until it ends); -1 when malformed.</summary>
    public int Scan(ReadOnlySpan<byte> data)
    {
        var i = 0;
        while (i < data.Length && _state != State.Done)
        {
            var b = data[i];
            switch (_state)
            {
                case State.Size:
                    if (char.IsAsciiHexDigit((char)b))
                    {
                        if (++_digits > 15)
                        {
                            return -1;
                        }
                        _remaining = _remaining * 16 + HexValue(b);
                    }
                    else if (_digits == 0)
                    {
                        return -1;
                    }
                    else if (b is (byte)';' or (byte)' ' or (byte)'\t')
                    {
                        _state = State.Extension;
                    }
                    else if (b == '\r')
                    {
                        _state = State.SizeLf;
                    }
                    else
                    {
                        return -1;
                    }
                    i++;
                    break;
                case State.Extension:
                    if (b == '\r')
                    {
                        _state = State.SizeLf;
                    }
                    else if ((b < 0x20 && b != '\t') || b >= 0x7f || ++_line > MaxLine)
                    {
                        return -1;
                    }
                    i++;
                    break;
                case State.SizeLf:
                    if (b != '\n')
                    {
                        return -1;
                    }
                    i++;
                    _line = 0;
                    _digits = 0;
                    _state = _remaining == 0 ? State.TrailerStart : State.Data;
                    break;
                case State.Data:
                    var take = (int)Math.Min(_remaining, data.Length - i);
                    i += take;
                    _remaining -= take;
                    if (_remaining == 0)
                    {
                        _state = State.DataCr;
                    }
                    break;
                case State.DataCr:
                    if (b != '\r')
                    {
                        return -1;
                    }
                    i++;
                    _state = State.DataLf;
                    break;
                case State.DataLf:
                    if (b != '\n')
                    {
                        return -1;
                    }
                    i++;
                    _state = State.Size;
                    break;
                case State.TrailerStart:
                    if (b == '\r')
                    {
                        i++;
                        _state = State.FinalLf;
                    }
                    else
                    {
                        _state = State.TrailerLine;
                    }
                    break;
                case State.TrailerLine:
                    if (b == '\r')
                    {
                        _state = State.TrailerLf;
                    }
                    else if ((b < 0x20 && b != '\t') || b >= 0x7f || ++_trailers > MaxTrailers)
                    {
                        return -1;
                    }
                    i++;
                    break;
                case State.TrailerLf:
                    if (b != '\n')
                    {
                        return -1;
                    }
                    i++;
                    _state = State.TrailerStart;
                    break;
                case State.FinalLf:
                    if (b != '\n')
                    {
                        return -1;
                    }
                    i++;
                    _state = State.Done;
                    break;
            }
        }
        return i;
    }

    private static int HexValue(byte b) => b <= '9' ? b - '0' : (b | 0x20) - 'a' + 10;
}
