using System.Buffers;
using System.Buffers.Text;
using System.Text;

namespace SharedRuntime.Http.Relay;

/// <summary>
/// One HTTP/1.1 request head as the invoke relay reads it: where its parts are in the connection's buffer, and
/// whether it is a request the relay takes at all. The relay takes only what it can forward exactly as the runtime's
/// HTTP API would: <c>/v1.0/invoke/{appId}/method/{method}</c> with a plain path (no percent-escapes or dot segments)
/// and a query of visible ASCII, a <c>Content-Length</c> body or none, header names that are tokens and values of
/// visible ASCII, one <c>Host</c> and one <c>dapr-api-token</c>, no <c>Transfer-Encoding</c>, <c>Expect</c> or
/// <c>Upgrade</c>, within the server's line and header-count limits. Anything else goes to the HTTP API, which
/// answers it (or refuses it) as it always does.
/// </summary>
internal sealed class RequestHead
{
    /// <summary>Longest request line taken (the server's own limit).</summary>
    public const int MaxRequestLine = 8 * 1024;

    /// <summary>Most header lines taken (the server's own limit).</summary>
    public const int MaxHeaders = 100;

    private static ReadOnlySpan<byte> InvokePrefix => "/v1.0/invoke/"u8;

    private static ReadOnlySpan<byte> MethodLiteral => "/method/"u8;

    /// <summary>The bytes of an HTTP token (a header name, a verb).</summary>
    internal static readonly SearchValues<byte> TokenBytes =
        SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    /// <summary>Path characters taken as they are: unreserved, sub-delims, ':', '@' and '/'; no '%'.</summary>
    private static readonly SearchValues<byte> PathBytes =
        SearchValues.Create("-._~!$&'()*+,;=:@/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    /// <summary>Visible ASCII but '#'.</summary>
    private static readonly SearchValues<byte> QueryBytes =
        SearchValues.Create("!\"$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"u8);

    /// <summary>Visible ASCII, space and tab: what a header value may hold, both ways.</summary>
    internal static readonly SearchValues<byte> ValueBytes =
        SearchValues.Create("\t !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"u8);

    private readonly int[] _kept = new int[2 * MaxHeaders];

    /// <summary>Bytes of the head, through the empty line.</summary>
    public int Length { get; private set; }

    public Range Verb { get; private set; }

    /// <summary>The app-id as the path names it (maybe <c>app-id.namespace</c>).</summary>
    public Range AppId { get; private set; }

    /// <summary>The method path after <c>/method/</c>, without the query.</summary>
    public Range Method { get; private set; }

    /// <summary>The query with its '?', or empty.</summary>
    public Range Query { get; private set; }

    /// <summary>The whole request target, which identifies the route for a connection that repeats it.</summary>
    public Range Target { get; private set; }

    public Range Token { get; private set; }

    public Range Host { get; private set; }

    /// <summary>The caller's <c>traceparent</c> value, or an empty range.</summary>
    public Range TraceParent { get; private set; }

    /// <summary>The body's length; 0 when the request has none, and <see cref="HasContentLength"/> says whether it said so.</summary>
    public int ContentLength { get; private set; }

    public bool HasContentLength { get; private set; }

    /// <summary>The caller asked to close the connection after the answer.</summary>
    public bool Close { get; private set; }

    /// <summary>How many header lines are forwarded as they came (<see cref="KeptLine"/>).</summary>
    public int KeptCount { get; private set; }

    /// <summary>A forwarded header line, with its CRLF.</summary>
    public Range KeptLine(int index) => new(_kept[2 * index], _kept[2 * index + 1]);

    /// <summary>Whether the request is a HEAD, whose answer has no body.</summary>
    public bool HeadRequest(ReadOnlySpan<byte> data) => data[Verb].SequenceEqual("HEAD"u8);

    /// <summary>Where the head ends (after its empty line) in <paramref name="data"/>, or -1 when it is not all there.</summary>
    public static int FindEnd(ReadOnlySpan<byte> data)
    {
        var end = data.IndexOf("\r\n\r\n"u8);
        return end < 0 ? -1 : end + 4;
    }

    /// <summary>
    /// Reads the head that <paramref name="data"/> starts with (it is whole: <see cref="FindEnd"/> found its end at
    /// <paramref name="length"/>). False when the relay does not take this request.
    /// </summary>
    public bool TryParse(ReadOnlySpan<byte> data, int length)
    {
        Length = length;
        KeptCount = 0;
        Close = false;
        HasContentLength = false;
        ContentLength = 0;
        Token = Host = TraceParent = default;
        var head = data[..length];
        var lineEnd = head.IndexOf("\r\n"u8);
        if (lineEnd <= 0 || lineEnd > MaxRequestLine || !TryParseRequestLine(head[..lineEnd]))
        {
            return false;
        }
        var position = lineEnd + 2;
        bool token = false, host = false, traceParent = false;
        var headers = 0;
        while (true)
        {
            var rest = head[position..];
            var end = rest.IndexOf("\r\n"u8);
            if (end == 0)
            {
                break; // the empty line
            }
            if (end < 0 || ++headers > MaxHeaders)
            {
                return false;
            }
            var line = rest[..end];
            var colon = line.IndexOf((byte)':');
            if (colon <= 0 || line[..colon].IndexOfAnyExcept(TokenBytes) >= 0)
            {
                return false; // no name, a name that is not a token, or a folded line
            }
            var name = line[..colon];
            var valueStart = colon + 1;
            var valueEnd = line.Length;
            while (valueStart < valueEnd && line[valueStart] is (byte)' ' or (byte)'\t')
            {
                valueStart++;
            }
            while (valueEnd > valueStart && line[valueEnd - 1] is (byte)' ' or (byte)'\t')
            {
                valueEnd--;
            }
            var value = line[valueStart..valueEnd];
            if (value.IndexOfAnyExcept(ValueBytes) >= 0)
            {
                return false;
            }
            var valueRange = new Range(position + valueStart, position + valueEnd);
            switch (Classify(name))
            {
                case Header.Forwarded:
                    _kept[2 * KeptCount] = position;
                    _kept[2 * KeptCount + 1] = position + end + 2;
                    KeptCount++;
                    break;
                case Header.Dropped:
                    break;
                case Header.NotRelayed:
                    return false;
                case Header.ContentLength:
                    if (HasContentLength || value.Length is 0 or > 9 || value.IndexOfAnyExceptInRange((byte)'0', (byte)'9') >= 0 ||
                        !Utf8Parser.TryParse(value, out int contentLength, out _))
                    {
                        return false;
                    }
                    HasContentLength = true;
                    ContentLength = contentLength;
                    break;
                case Header.Connection:
                    if (Ascii.EqualsIgnoreCase(value, "close"u8))
                    {
                        Close = true;
                    }
                    else if (!Ascii.EqualsIgnoreCase(value, "keep-alive"u8))
                    {
                        return false;
                    }
                    break;
                case Header.Host:
                    if (host)
                    {
                        return false;
                    }
                    host = true;
                    Host = valueRange;
                    break;
                case Header.Token:
                    if (token)
                    {
                        return false;
                    }
                    token = true;
                    Token = valueRange;
                    break;
                case Header.TraceParent:
                    if (traceParent)
                    {
                        return false;
                    }
                    traceParent = true;
                    TraceParent = valueRange;
                    break;
            }
            position += end + 2;
        }
        return host && token;
    }

    private bool TryParseRequestLine(ReadOnlySpan<byte> line)
    {
        var space = line.IndexOf((byte)' ');
        if (space <= 0 || space > 32 || line[..space].IndexOfAnyExcept(TokenBytes) >= 0 || line[..space].SequenceEqual("CONNECT"u8))
        {
            return false;
        }
        Verb = new Range(0, space);
        var rest = line[(space + 1)..];
        var targetEnd = rest.IndexOf((byte)' ');
        if (targetEnd <= 0 || !rest[(targetEnd + 1)..].SequenceEqual("HTTP/1.1"u8))
        {
            return false;
        }
        var targetStart = space + 1;
        var target = rest[..targetEnd];
        Target = new Range(targetStart, targetStart + targetEnd);
        if (!(target.Length >= InvokePrefix.Length && Ascii.EqualsIgnoreCase(target[..InvokePrefix.Length], InvokePrefix)))
        {
            return false;
        }
        var question = target.IndexOf((byte)'?');
        var path = question < 0 ? target : target[..question];
        var query = question < 0 ? [] : target[question..];
        if (path.IndexOfAnyExcept(PathBytes) >= 0 || path.IndexOf("/."u8) >= 0 ||
            (query.Length > 0 && query[1..].IndexOfAnyExcept(QueryBytes) >= 0))
        {
            return false; // escapes, dot segments and unusual characters take the HTTP API's decoding
        }
        var afterPrefix = path[InvokePrefix.Length..];
        var slash = afterPrefix.IndexOf((byte)'/');
        if (slash <= 0 || !(afterPrefix.Length - slash >= MethodLiteral.Length && Ascii.EqualsIgnoreCase(afterPrefix.Slice(slash, MethodLiteral.Length), MethodLiteral)) || afterPrefix.Length == slash + MethodLiteral.Length)
        {
            return false;
        }
        var appIdStart = targetStart + InvokePrefix.Length;
        AppId = new Range(appIdStart, appIdStart + slash);
        var methodStart = appIdStart + slash + MethodLiteral.Length;
        Method = new Range(methodStart, targetStart + path.Length);
        Query = new Range(targetStart + path.Length, targetStart + target.Length);
        return true;
    }

    private enum Header { Forwarded, Dropped, NotRelayed, ContentLength, Connection, Host, Token, TraceParent }

    /// <summary>What the relay does with a header: as the HTTP API's invocation does (hop-by-hop and runtime-owned ones are dropped).</summary>
    private static Header Classify(ReadOnlySpan<byte> name) => name.Length switch
    {
        2 when Ascii.EqualsIgnoreCase(name, "te"u8) => Header.Dropped,
        4 when Ascii.EqualsIgnoreCase(name, "host"u8) => Header.Host,
        6 when Ascii.EqualsIgnoreCase(name, "expect"u8) => Header.NotRelayed,
        7 when Ascii.EqualsIgnoreCase(name, "upgrade"u8) => Header.NotRelayed,
        7 when Ascii.EqualsIgnoreCase(name, "trailer"u8) => Header.Dropped,
        10 when Ascii.EqualsIgnoreCase(name, "connection"u8) => Header.Connection,
        10 when Ascii.EqualsIgnoreCase(name, "keep-alive"u8) => Header.Dropped,
        11 when Ascii.EqualsIgnoreCase(name, "dapr-app-id"u8) => Header.Dropped,
        11 when Ascii.EqualsIgnoreCase(name, "traceparent"u8) => Header.TraceParent,
        14 when Ascii.EqualsIgnoreCase(name, "content-length"u8) => Header.ContentLength,
        14 when Ascii.EqualsIgnoreCase(name, "dapr-api-token"u8) => Header.Token,
        15 when Ascii.EqualsIgnoreCase(name, "x-forwarded-for"u8) => Header.Dropped,
        16 when Ascii.EqualsIgnoreCase(name, "proxy-connection"u8) => Header.Dropped,
        16 when Ascii.EqualsIgnoreCase(name, "x-forwarded-host"u8) => Header.Dropped,
        17 when Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8) => Header.NotRelayed,
        17 when Ascii.EqualsIgnoreCase(name, "x-forwarded-proto"u8) => Header.Dropped,
        18 when Ascii.EqualsIgnoreCase(name, "proxy-authenticate"u8) => Header.Dropped,
        18 when Ascii.EqualsIgnoreCase(name, "dapr-caller-app-id"u8) => Header.Dropped,
        18 when Ascii.EqualsIgnoreCase(name, "dapr-callee-app-id"u8) => Header.Dropped,
        19 when Ascii.EqualsIgnoreCase(name, "proxy-authorization"u8) => Header.Dropped,
        21 when Ascii.EqualsIgnoreCase(name, "dapr-caller-namespace"u8) => Header.Dropped,
        _ => Header.Forwarded,
    };
}
