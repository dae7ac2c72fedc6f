using System.Text;

namespace SharedRuntime.AppChannel;

/// <summary>How a caller's method path reached the runtime.</summary>
internal enum MethodPathForm
{
    /// <summary>Percent-encoded, as in a URL (gRPC <c>InvokeService</c>'s <c>method</c>): decoded once here.</summary>
    Encoded,

    /// <summary>
    /// Already decoded by the HTTP server (Kestrel decodes every escape but <c>%2F</c>): a <c>%XX</c> still in it means
    /// the caller sent an encoded slash or encoded a percent sign twice, which a target may decode again.
    /// </summary>
    Decoded,
}

/// <summary>
/// An invocation's method path in the one form that the access control judges and the target app receives:
/// segments decoded, empty and <c>.</c> segments dropped and <c>..</c> resolved (as Dapr does), then each segment
/// escaped again. A path a target could read differently from the runtime is refused: an encoded <c>/</c> or
/// <c>\</c> inside a segment, a backslash, an encoded dot segment, double encoding, invalid UTF-8, a control
/// character, <c>?</c> or <c>#</c> (Dapr refuses those last three too).
/// </summary>
internal readonly record struct MethodPath
{
    private MethodPath(string plain, string escaped)
    {
        Plain = plain;
        Escaped = escaped;
    }

    /// <summary>The decoded segments joined by '/', without a leading slash: what the access control matches.</summary>
    public string Plain { get; }

    /// <summary>The same segments escaped: the path sent to the app, below its endpoint.</summary>
    public string Escaped { get; }

    /// <summary>Normalises <paramref name="method"/>, or gives the reason it is refused.</summary>
    public static bool TryParse(string method, MethodPathForm form, out MethodPath path, out string? problem)
    {
        if (IsPlain(method))
        {
            // Already in its one form: nothing to decode, drop, resolve or escape.
            path = new MethodPath(method, method);
            problem = null;
            return true;
        }
        path = default;
        var segments = new List<string>();
        foreach (var raw in method.Split('/'))
        {
            if (!TryDecodeSegment(raw, form, out var plain, out problem))
            {
                return false;
            }
            if (plain is "." or ".." && !raw.Equals(plain, StringComparison.Ordinal))
            {
                problem = "the method path has an encoded dot segment";
                return false;
            }
            switch (plain)
            {
                case "" or ".":
                    continue;
                case "..":
                    if (segments.Count > 0)
                    {
                        segments.RemoveAt(segments.Count - 1);
                    }
                    continue;
                default:
                    segments.Add(plain);
                    break;
            }
        }
        string escaped;
        try
        {
            escaped = string.Join('/', segments.Select(Uri.EscapeDataString));
        }
        catch (UriFormatException)
        {
            problem = "the method path is not valid Unicode";
            return false;
        }
        path = new MethodPath(string.Join('/', segments), escaped);
        problem = null;
        return true;
    }

    /// <summary>Characters <see cref="Uri.EscapeDataString(string)"/> leaves as they are.</summary>
    private static readonly System.Buffers.SearchValues<char> Unreserved =
        System.Buffers.SearchValues.Create("-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");

    /// <summary>
    /// Whether <paramref name="method"/> is already normalised, the same decoded and escaped: non-empty segments of
    /// unreserved characters only, none of them <c>.</c> or <c>..</c> (the common case, which then costs no allocation).
    /// </summary>
    private static bool IsPlain(string method)
    {
        var rest = method.AsSpan();
        while (true)
        {
            var slash = rest.IndexOf('/');
            var segment = slash < 0 ? rest : rest[..slash];
            if (segment.IsEmpty || segment.IndexOfAnyExcept(Unreserved) >= 0 || segment is "." or "..")
            {
                return false;
            }
            if (slash < 0)
            {
                return true;
            }
            rest = rest[(slash + 1)..];
        }
    }

    private static bool TryDecodeSegment(string raw, MethodPathForm form, out string plain, out string? problem)
    {
        plain = raw;
        problem = null;
        if (raw.Contains('\\', StringComparison.Ordinal))
        {
            problem = "the method path has a backslash, which some apps read as '/'";
            return false;
        }
        if (form == MethodPathForm.Decoded)
        {
            if (HasEscape(raw))
            {
                problem = "the method path has an encoded '/' or a double-encoded character, which the app could read as another path";
                return false;
            }
        }
        else if (raw.Contains('%', StringComparison.Ordinal))
        {
            if (!TryUnescape(raw, out plain, out problem))
            {
                return false;
            }
            if (HasEscape(plain))
            {
                problem = "the method path is encoded twice, which the app could read as another path";
                return false;
            }
        }
        foreach (var c in plain)
        {
            if (c is < ' ' or '\u007f' or '?' or '#')
            {
                problem = "the method path has a control character, '?' or '#'";
                return false;
            }
        }
        return true;
    }

    /// <summary>Decodes the escapes of one segment as UTF-8; refuses encoded separators and invalid UTF-8. A '%' without two hex digits stays as it is.</summary>
    private static bool TryUnescape(string raw, out string plain, out string? problem)
    {
        plain = raw;
        problem = null;
        try
        {
            var bytes = new List<byte>(raw.Length);
            var literal = 0; // start of the run of characters since the last escape
            for (var i = 0; i < raw.Length; i++)
            {
                if (raw[i] != '%' || i + 2 >= raw.Length || !IsHex(raw[i + 1]) || !IsHex(raw[i + 2]))
                {
                    continue;
                }
                bytes.AddRange(StrictUtf8.GetBytes(raw, literal, i - literal));
                var b = (byte)((HexValue(raw[i + 1]) << 4) | HexValue(raw[i + 2]));
                if (b is (byte)'/' or (byte)'\\')
                {
                    problem = "the method path has an encoded '/' or '\\' inside a segment, which the app could read as a separator";
                    return false;
                }
                bytes.Add(b);
                i += 2;
                literal = i + 1;
            }
            bytes.AddRange(StrictUtf8.GetBytes(raw, literal, raw.Length - literal));
            plain = StrictUtf8.GetString([.. bytes]);
            return true;
        }
        catch (Exception ex) when (ex is DecoderFallbackException or EncoderFallbackException)
        {
            problem = "the method path is not valid UTF-8";
            return false;
        }
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static bool HasEscape(string text)
    {
        for (var i = text.IndexOf('%', StringComparison.Ordinal); i >= 0 && i + 2 < text.Length; i = text.IndexOf('%', i + 1))
        {
            if (IsHex(text[i + 1]) && IsHex(text[i + 2]))
            {
                return true;
            }
        }
        return false;
    }

    private static bool IsHex(char c) => char.IsAsciiHexDigit(c);

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}
