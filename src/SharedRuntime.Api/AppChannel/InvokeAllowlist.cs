using System.Net;
using System.Net.Sockets;

namespace SharedRuntime.AppChannel;

/// <summary>
/// The hosts that invocation may reach outside the runtime's own apps (<c>--allowed-invoke-hosts</c>), for an
/// HTTPEndpoint's base URL and for Dapr's invoke-by-URL form alike. Each pattern is <c>host</c> (any port),
/// <c>host:port</c>, <c>*.domain</c> (its subdomains, not the domain itself, optionally with <c>:port</c>) or
/// <c>*</c> (any host). Empty, the default, allows none: invocation is then never a way to reach an arbitrary host.
/// Whatever the list says, link-local addresses (cloud metadata services such as 169.254.169.254) are never reached,
/// neither named directly nor through a name that resolves to one.
/// </summary>
internal sealed class InvokeAllowlist
{
    private readonly Pattern[] _patterns;

    private InvokeAllowlist(Pattern[] patterns) => _patterns = patterns;

    public static InvokeAllowlist None { get; } = new([]);

    public bool IsEmpty => _patterns.Length == 0;

    /// <summary>The patterns as given, for messages.</summary>
    public override string ToString() => string.Join(',', _patterns.Select(p => p.Text));

    /// <summary>Parses a comma-separated list; throws <see cref="FormatException"/> naming the bad pattern.</summary>
    public static InvokeAllowlist Parse(IEnumerable<string> patterns)
    {
        var parsed = new List<Pattern>();
        foreach (var text in patterns.SelectMany(p => p.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
        {
            parsed.Add(Pattern.Parse(text));
        }
        return new([.. parsed]);
    }

    /// <summary>Whether <paramref name="host"/> (as <see cref="Uri.IdnHost"/> gives it) on <paramref name="port"/> is allowed.</summary>
    public bool Allows(string host, int port)
    {
        foreach (var pattern in _patterns)
        {
            if (pattern.Matches(host, port))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// An address invocation never connects to, whatever the allowlist says: link-local IPv4 (169.254.0.0/16, where
    /// cloud metadata services answer) and IPv6 (fe80::/10), also in their IPv4-mapped form, and unspecified addresses.
    /// </summary>
    public static bool IsForbiddenAddress(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }
        if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any))
        {
            return true;
        }
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            Span<byte> bytes = stackalloc byte[4];
            address.TryWriteBytes(bytes, out _);
            return bytes[0] == 169 && bytes[1] == 254;
        }
        return address.IsIPv6LinkLocal;
    }

    private sealed record Pattern(string Text, string Host, bool Subdomains, int? Port)
    {
        public static Pattern Parse(string text)
        {
            if (text == "*")
            {
                return new(text, "", true, null);
            }
            var host = text;
            int? port = null;
            var colon = text.LastIndexOf(':');
            if (colon > 0 && text.IndexOf(':') == colon || text.StartsWith('[') && colon > text.IndexOf(']'))
            {
                port = int.TryParse(text.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var p) && p is > 0 and <= 65535
                    ? p
                    : throw new FormatException($"--allowed-invoke-hosts: '{text}' has no valid port after ':'");
                host = text[..colon];
            }
            var subdomains = host.StartsWith("*.", StringComparison.Ordinal);
            if (subdomains)
            {
                host = host[2..];
            }
            if (host.StartsWith('[') && host.EndsWith(']'))
            {
                host = host[1..^1];
            }
            var check = host.Contains(':') ? $"[{host}]" : host;
            if (host.Length == 0 || host.Contains('*') || Uri.CheckHostName(check) == UriHostNameType.Unknown)
            {
                throw new FormatException($"--allowed-invoke-hosts: '{text}' is not a host, host:port, *.domain or *");
            }
            // Compared the way Uri.IdnHost spells a destination: lower case, IPv6 without brackets.
            var normal = new Uri($"http://{check}/").IdnHost;
            return new(text, normal, subdomains, port);
        }

        public bool Matches(string host, int port)
        {
            if (Port is { } p && p != port)
            {
                return false;
            }
            if (Host.Length == 0)
            {
                return true; // '*'
            }
            return Subdomains
                ? host.Length > Host.Length + 1 && host.EndsWith(Host, StringComparison.OrdinalIgnoreCase) && host[^(Host.Length + 1)] == '.'
                : host.Equals(Host, StringComparison.OrdinalIgnoreCase);
        }
    }
}
