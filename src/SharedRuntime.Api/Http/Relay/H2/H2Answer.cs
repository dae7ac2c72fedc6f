using System.Text;
using Microsoft.AspNetCore.WebUtilities;

namespace SharedRuntime.Http.Relay.H2;

/// <summary>
/// Turns the header fields of an app's HTTP/2 answer into the HTTP/1.1 head the relay checks and rewrites for the
/// caller (<see cref="ResponseHead"/>): <c>:status</c> becomes the status line and every other field a header line.
/// What HTTP/2 forbids in an answer (another pseudo-header, one after a regular field, a repeated or missing
/// <c>:status</c>, an uppercase name, the HTTP/1.1 connection headers) is a problem.
/// </summary>
internal sealed class H2Answer : IHeaderSink
{
    private static readonly byte[]?[] s_statusLines = new byte[600][];
    private readonly byte[] _head;

    public H2Answer(byte[] head) => _head = head;

    /// <summary>The head written so far; complete (through its empty line) after <see cref="Finish"/>.</summary>
    public ReadOnlySpan<byte> Head => _head.AsSpan(0, Length);

    public int Length { get; private set; }

    public int Status { get; private set; }

    public bool HasContentLength { get; private set; }

    public string? Problem { get; private set; }

    /// <summary>Whether the fields decoded are to be dropped (trailers, and answers on streams the relay gave up).</summary>
    public bool Discard { get; set; }

    public void Reset()
    {
        Length = 0;
        Status = 0;
        HasContentLength = false;
        Problem = null;
        Discard = false;
    }

    public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        if (Discard || Problem is not null)
        {
            return;
        }
        if (name.Length > 0 && name[0] == ':')
        {
            if (!name.SequenceEqual(":status"u8) || Status != 0)
            {
                Problem = "its answer has a pseudo-header other than one :status";
                return;
            }
            if (value.Length != 3 || value.IndexOfAnyExceptInRange((byte)'0', (byte)'9') >= 0 || value[0] == '0')
            {
                Problem = "its :status is not a three-digit code";
                return;
            }
            Status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
            Append(StatusLine(Status));
            return;
        }
        if (Status == 0)
        {
            Problem = "its answer has a header before :status";
            return;
        }
        if (name.IndexOfAnyInRange((byte)'A', (byte)'Z') >= 0 || Ascii.EqualsIgnoreCase(name, "connection"u8) ||
            Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8) || Ascii.EqualsIgnoreCase(name, "keep-alive"u8) ||
            Ascii.EqualsIgnoreCase(name, "upgrade"u8) || Ascii.EqualsIgnoreCase(name, "proxy-connection"u8))
        {
            Problem = "its answer has a header HTTP/2 does not allow";
            return;
        }
        HasContentLength |= name.SequenceEqual("content-length"u8);
        Append(name);
        Append(": "u8);
        Append(value);
        Append("\r\n"u8);
    }

    /// <summary>
    /// Ends the head. An answer whose stream ended with its headers and that says nothing of its length gets
    /// <c>Content-Length: 0</c>, so the caller's connection can be kept.
    /// </summary>
    public void Finish(bool endStream, bool toHead)
    {
        if (Problem is null && Status == 0)
        {
            Problem = "its answer has no :status";
        }
        if (Problem is not null)
        {
            return;
        }
        if (endStream && !HasContentLength && !toHead && Status >= 200 && Status is not (204 or 304))
        {
            Append("content-length: 0\r\n"u8);
        }
        Append("\r\n"u8);
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        if (Length + bytes.Length > _head.Length)
        {
            Problem ??= $"its response headers are longer than {_head.Length} bytes";
            return;
        }
        bytes.CopyTo(_head.AsSpan(Length));
        Length += bytes.Length;
    }

    private static byte[] StatusLine(int status)
    {
        var index = status < s_statusLines.Length ? status : 0;
        if (index > 0 && s_statusLines[index] is { } known)
        {
            return known;
        }
        var line = Encoding.ASCII.GetBytes($"HTTP/1.1 {status} {ReasonPhrases.GetReasonPhrase(status)}\r\n");
        if (index > 0)
        {
            s_statusLines[index] = line;
        }
        return line;
    }
}
