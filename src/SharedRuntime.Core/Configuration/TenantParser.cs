namespace SharedRuntime.Configuration;

/// <summary>Parses a Tenant resource: its app-id, endpoint, API token and limits.</summary>
internal static class TenantParser
{
    /// <param name="fromCache">
    /// A Tenant read back from the fail-static cache: its token may be given as <c>sha256</c> only, and an
    /// <c>appApiToken</c> that came from a Secret (kept there as its reference, never its value) is left unset.
    /// </param>
    public static TenantConfig Parse(RawResource raw, Func<string, string?> environment, SecretResolver? secrets, bool fromCache = false)
    {
        var root = raw.Node;
        var spec = root["spec"];
        if (spec.IsMissing)
        {
            throw spec.Error("is required (a Tenant needs at least spec.apiToken)");
        }
        var appId = spec["appId"].AsString() ?? raw.Name;
        if (!ResourceRules.NamePattern().IsMatch(appId) || appId.Contains(StateKeysSeparator, StringComparison.Ordinal))
        {
            throw spec["appId"].Error($"'{appId}' is not a valid app-id (letters, digits, '-', '.', '_'; at most 64)");
        }
        if (raw.Namespace is not null && appId.Contains(ResourceNamespace.Separator, StringComparison.Ordinal))
        {
            throw spec["appId"].Error($"'{appId}' contains '{ResourceNamespace.Separator}', which separates app-id and namespace in Kubernetes (app-id.namespace)");
        }

        var endpoint = spec["appEndpoint"].AsString();
        if (endpoint is not null &&
            (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)))
        {
            throw spec["appEndpoint"].Error($"'{endpoint}' is not an absolute http or https URL");
        }

        var protocol = ParseAppProtocol(spec["appProtocol"], endpoint);

        var tokenHash = fromCache ? ParseTokenHash(spec["apiToken"]) : null;
        var token = tokenHash is null ? ParseToken(spec["apiToken"], environment, secrets) : "";
        var limitsConfig = ParseLimits(spec["limits"], allowScope: true);

        return new TenantConfig
        {
            Name = raw.Name,
            AppId = appId,
            AppEndpoint = endpoint?.TrimEnd('/'),
            AppProtocol = protocol,
            AppHealth = AppHealthParser.Parse(spec, endpoint),
            ApiToken = token,
            ApiTokenSha256 = tokenHash,
            Limits = limitsConfig,
            AppChannel = AppChannelParser.Parse(fromCache ? WithoutSecretAppToken(spec["appChannel"]) : spec["appChannel"], environment, secrets),
            ConfigName = spec["config"].AsString(),
            Identity = TenantIdentityConfig.Parse(spec["identity"], raw.Namespace ?? root["metadata"]["namespace"].AsString() ?? ""),
            Namespace = raw.Namespace,
            Source = ResourceRules.SourceOf(raw),
        };
    }

    /// <summary>
    /// A <c>limits</c> mapping (a Tenant's <c>spec.limits</c>, or a TenantLimitPolicy's defaults and maxima), each limit
    /// within its bounds; <c>scope</c> only where <paramref name="allowScope"/>.
    /// </summary>
    public static TenantLimitsConfig ParseLimits(ResourceNode limits, bool allowScope)
    {
        var config = new TenantLimitsConfig
        {
            RequestsPerSecond = limits["requestsPerSecond"].AsDouble(0.001, 10_000_000),
            Burst = (int?)limits["burst"].AsInt64(1, int.MaxValue),
            MaxConcurrency = (int?)limits["maxConcurrency"].AsInt64(1, 1_000_000),
            MaxQueue = (int?)limits["maxQueue"].AsInt64(0, 1_000_000),
            MaxRequestBodyBytes = limits["maxRequestBodyBytes"].AsInt64(0, 1L << 40),
            StateMaxKeys = limits["stateMaxKeys"].AsInt64(0, long.MaxValue),
            StateMaxBytes = limits["stateMaxBytes"].AsInt64(0, long.MaxValue),
            MaxMemoryBytes = limits["maxMemoryBytes"].AsInt64(0, 1L << 40),
            Scope = limits["scope"].AsString() switch
            {
                null or "runtime" => LimitScope.Runtime,
                "cluster" => LimitScope.Cluster,
                var other => throw limits["scope"].Error($"'{other}' is not a scope; use runtime (each runtime enforces the limits) or cluster (the limits are for the whole cluster)"),
            },
        };
        foreach (var (key, node) in limits.Entries())
        {
            if (!KnownLimits.Contains(key) || (key == "scope" && !allowScope))
            {
                throw node.Error($"unknown limit; known limits are {string.Join(", ", allowScope ? KnownLimits : LimitCeiling.LimitNames)}");
            }
        }
        // Most Tenants set no limit: they share one object rather than keep one each.
        return config == TenantLimitsConfig.Empty ? TenantLimitsConfig.Empty : config;
    }

    private const string StateKeysSeparator = "||";

    /// <summary>The token's hash as the cache keeps it (<c>apiToken: {sha256: HEX}</c>), or null when it is given another way.</summary>
    private static byte[]? ParseTokenHash(ResourceNode node)
    {
        if (node["sha256"].AsString() is not { } hex)
        {
            return null;
        }
        try
        {
            return hex.Length == 64 ? Convert.FromHexString(hex) : throw new FormatException();
        }
        catch (FormatException)
        {
            throw node["sha256"].Error("is not the 64 hex digits of a SHA-256");
        }
    }

    /// <summary>The cached appChannel without an appApiToken taken from a Secret: the cache keeps its reference only.</summary>
    private static ResourceNode WithoutSecretAppToken(ResourceNode appChannel)
    {
        if (!appChannel["appApiToken"]["secretKeyRef"].IsMissing && appChannel.Value is Dictionary<object, object?> map)
        {
            map.Remove("appApiToken");
        }
        return appChannel;
    }

    /// <summary>The app protocols a Tenant may ask for, as <c>spec.appProtocol</c> spells them.</summary>
    private static readonly string[] KnownAppProtocols = ["http", "h2c", "grpc"];

    private static AppProtocol ParseAppProtocol(ResourceNode node, string? endpoint)
    {
        var value = node.AsString();
        var protocol = value switch
        {
            null or "http" => AppProtocol.Http,
            "h2c" => AppProtocol.H2c,
            "grpc" => AppProtocol.Grpc,
            _ => throw node.Error($"'{value}' is not a known app protocol; known protocols are {string.Join(", ", KnownAppProtocols)}"),
        };
        if (protocol != AppProtocol.Http && endpoint is not null && endpoint.StartsWith("https:", StringComparison.OrdinalIgnoreCase))
        {
            throw node.Error($"{value} is HTTP/2 without TLS: the appEndpoint must be an http URL");
        }
        return protocol;
    }

    private static readonly string[] KnownLimits =
        ["requestsPerSecond", "burst", "maxConcurrency", "maxQueue", "maxRequestBodyBytes", "stateMaxKeys", "stateMaxBytes", "maxMemoryBytes", "scope"];

    /// <summary>Longest API token accepted, in UTF-8 bytes.</summary>
    public const int MaxTokenBytes = 512;

    /// <summary>An API token given as value, env or secretKeyRef, checked: not empty, not too long, no control characters.</summary>
    public static string ParseToken(ResourceNode node, Func<string, string?> environment, SecretResolver? secrets)
    {
        if (node.IsMissing)
        {
            throw node.Error("is required: value, env or secretKeyRef");
        }
        string? token;
        if (node.Value is string direct)
        {
            token = direct;
        }
        else if (!node["value"].IsMissing)
        {
            token = node["value"].AsString();
        }
        else if (!node["env"].IsMissing)
        {
            var name = node["env"].RequiredString();
            token = environment(name);
            if (string.IsNullOrEmpty(token))
            {
                throw node["env"].Error($"environment variable '{name}' is not set");
            }
        }
        else if (!node["secretKeyRef"].IsMissing)
        {
            var reference = node["secretKeyRef"];
            var name = reference["name"].RequiredString();
            var key = reference["key"].RequiredString();
            if (secrets is null)
            {
                throw reference.Error("secretKeyRef is resolved only in kubernetes mode; use value or env in standalone mode");
            }
            token = secrets(name, key);
            if (string.IsNullOrEmpty(token))
            {
                throw reference.Error($"secret '{name}' has no key '{key}'");
            }
        }
        else
        {
            throw node.Error("needs one of value, env or secretKeyRef");
        }

        if (string.IsNullOrEmpty(token))
        {
            throw node.Error("the token is empty");
        }
        if (System.Text.Encoding.UTF8.GetByteCount(token) > MaxTokenBytes)
        {
            throw node.Error($"the token is longer than {MaxTokenBytes} bytes");
        }
        if (token.Any(char.IsControl))
        {
            throw node.Error("the token contains control characters");
        }
        return token;
    }
}
