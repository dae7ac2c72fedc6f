namespace SharedRuntime.Configuration;

/// <summary>
/// Parses an HTTPEndpoint resource: its base URL, its headers (each a <c>value</c> or, in Kubernetes mode, a
/// <c>secretKeyRef</c>) and its scopes. <c>spec.clientTLS</c> (client certificates, a private root CA) is refused
/// rather than ignored, so a call is never made without the TLS the resource asked for.
/// </summary>
internal static class HttpEndpointParser
{
    /// <summary>At most this many headers in <c>spec.headers</c>.</summary>
    public const int MaxHeaders = 32;

    /// <summary>Longest header value, in characters.</summary>
    public const int MaxHeaderValue = 8 * 1024;

    /// <summary>Longest base URL, in characters.</summary>
    public const int MaxBaseUrl = 2048;

    private static readonly System.Buffers.SearchValues<char> TokenChars =
        System.Buffers.SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");

    /// <summary>Headers the runtime owns or that would change how the call is framed: an endpoint may not set them.</summary>
    private static readonly HashSet<string> Reserved = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "TE", "Trailer", "Expect",
        "Proxy-Connection", "traceparent",
    };

    public static HttpEndpointConfig Parse(RawResource raw, SecretResolver? secrets)
    {
        if (!ResourceRules.NamePattern().IsMatch(raw.Name))
        {
            throw raw.Error("metadata.name", "must be a DNS-style name: letters, digits, '-', '.' or '_'");
        }
        var spec = raw.Node["spec"];
        if (!spec["clientTLS"].IsMissing)
        {
            throw spec["clientTLS"].Error("client TLS (certificate, private key, root CA) is not supported; an https baseUrl is verified against the system's root CAs");
        }
        return new HttpEndpointConfig
        {
            Name = raw.Name,
            BaseUrl = BaseUrl(spec["baseUrl"]),
            Headers = Headers(spec["headers"], secrets),
            Scopes = raw.Node["scopes"].AsStringList(),
            Namespace = raw.Namespace,
            Source = ResourceRules.SourceOf(raw),
        };
    }

    /// <summary>An absolute http or https URL with a host, no user info, query or fragment; its trailing slash dropped.</summary>
    public static bool TryParseBaseUrl(string text, out Uri url, out string? problem)
    {
        url = null!;
        problem = null;
        if (text.Length > MaxBaseUrl)
        {
            problem = $"is longer than {MaxBaseUrl} characters";
            return false;
        }
        if (!Uri.TryCreate(text.TrimEnd('/'), UriKind.Absolute, out var parsed) || parsed.Scheme is not ("http" or "https") || parsed.Host.Length == 0)
        {
            problem = "must be an absolute http:// or https:// URL with a host";
            return false;
        }
        if (parsed.UserInfo.Length > 0 || parsed.Query.Length > 0 || parsed.Fragment.Length > 0)
        {
            problem = "may not carry user info, a query or a fragment";
            return false;
        }
        url = parsed;
        return true;
    }

    private static Uri BaseUrl(ResourceNode node)
    {
        var text = node.RequiredString();
        return TryParseBaseUrl(text, out var url, out var problem) ? url : throw node.Error($"'{text}' {problem}");
    }

    private static List<KeyValuePair<string, string>> Headers(ResourceNode headers, SecretResolver? secrets)
    {
        var result = new List<KeyValuePair<string, string>>();
        foreach (var header in headers.Items())
        {
            if (result.Count == MaxHeaders)
            {
                throw headers.Error($"has more than {MaxHeaders} headers");
            }
            var name = header["name"].RequiredString();
            if (name.AsSpan().IndexOfAnyExcept(TokenChars) >= 0)
            {
                throw header["name"].Error($"'{name}' is not a valid header name");
            }
            if (Reserved.Contains(name) || name.StartsWith("dapr-", StringComparison.OrdinalIgnoreCase))
            {
                throw header["name"].Error($"'{name}' is set by the runtime and cannot be given here");
            }
            if (result.Any(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase)))
            {
                throw header["name"].Error($"header '{name}' is given twice");
            }
            var value = Value(header, secrets);
            if (value.Length > MaxHeaderValue)
            {
                throw header.Error($"the value is longer than {MaxHeaderValue} characters");
            }
            if (value.Any(c => c is not ('\t' or (>= ' ' and <= '~'))))
            {
                throw header.Error("the value may hold visible ASCII and spaces only");
            }
            result.Add(new(name, value));
        }
        return result;
    }

    private static string Value(ResourceNode header, SecretResolver? secrets)
    {
        if (!header["value"].IsMissing)
        {
            return header["value"].AsString() ?? "";
        }
        var reference = header["secretKeyRef"];
        if (reference.IsMissing)
        {
            throw header.Error("needs value or secretKeyRef");
        }
        var name = reference["name"].RequiredString();
        var key = reference["key"].RequiredString();
        if (secrets is null)
        {
            throw reference.Error("secretKeyRef is resolved only in kubernetes mode; use value in standalone mode");
        }
        return secrets(name, key) ?? throw reference.Error($"secret '{name}' has no key '{key}'");
    }
}
