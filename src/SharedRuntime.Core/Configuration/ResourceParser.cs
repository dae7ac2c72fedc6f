using System.Text.RegularExpressions;

namespace SharedRuntime.Configuration;

/// <summary>Where secrets referenced by a resource come from while it is parsed (Kubernetes Secrets, say).</summary>
public delegate string? SecretResolver(string secretName, string key);

/// <summary>Turns raw YAML documents into typed resources and checks them, naming file, document and field on error.</summary>
internal static partial class ResourceParser
{
    [GeneratedRegex("^[a-z0-9]([-a-z0-9._]{0,62}[a-z0-9])?$", RegexOptions.IgnoreCase)]
    private static partial Regex NamePattern();

    public static ResourceSet Parse(IEnumerable<RawResource> raws, Func<string, string?> environment, SecretResolver? secrets = null)
    {
        var tenants = new List<TenantConfig>();
        var components = new List<ComponentConfig>();
        var subscriptions = new List<SubscriptionConfig>();
        var resiliencies = new List<ResiliencyConfig>();
        var configurations = new List<ConfigurationResourceConfig>();
        var configReferences = new List<(TenantConfig Tenant, RawResource Raw)>();
        var seen = new Dictionary<string, RawResource>(StringComparer.Ordinal);
        var appIds = new Dictionary<string, RawResource>(StringComparer.Ordinal);
        var tokens = new Dictionary<string, RawResource>(StringComparer.Ordinal);
        var rejectedTenants = new List<ResourceException>();
        var rejectedSubscriptions = new List<RejectedSubscription>();
        var subscriptionsPerApp = new SubscriptionCounter();

        foreach (var raw in raws)
        {
            var identity = $"{raw.Kind}/{raw.Name}";
            switch (raw.Kind)
            {
                case TenantConfig.KindName when raw.ApiVersion == TenantConfig.ApiVersion:
                    try
                    {
                        CheckUnique(seen, identity, raw);
                        var tenant = ParseTenant(raw, environment, secrets);
                        CheckUniqueTenant(tenant, raw, appIds, tokens);
                        tenants.Add(tenant);
                        if (tenant.ConfigName is not null)
                        {
                            configReferences.Add((tenant, raw));
                        }
                    }
                    catch (ResourceException ex)
                    {
                        rejectedTenants.Add(ex); // only this tenant is unusable; the rest of the set applies
                    }
                    break;
                case ComponentConfig.KindName when raw.ApiVersion == ComponentConfig.ApiVersion:
                    CheckUnique(seen, identity, raw);
                    components.Add(ParseComponent(raw));
                    break;
                case SubscriptionConfig.KindName:
                    try
                    {
                        if (raw.ApiVersion is not (DaprApiVersion or DaprApiVersion2))
                        {
                            throw raw.Error("apiVersion", $"'{raw.ApiVersion}' is not a known apiVersion for {raw.Kind}");
                        }
                        CheckUnique(seen, identity, raw);
                        var subscription = ParseSubscription(raw);
                        subscriptionsPerApp.Add(subscription, raw);
                        subscriptions.Add(subscription);
                    }
                    catch (ResourceException ex)
                    {
                        // Only the apps this subscription names lose it; the rest of the set applies.
                        rejectedSubscriptions.Add(new RejectedSubscription(ex, ScopesOf(raw)));
                    }
                    break;
                case ResiliencyConfig.KindName when raw.ApiVersion == DaprApiVersion:
                    CheckUnique(seen, identity, raw);
                    resiliencies.Add(ParseResiliency(raw));
                    break;
                case ConfigurationResourceConfig.KindName when raw.ApiVersion == DaprApiVersion:
                    CheckUnique(seen, identity, raw);
                    configurations.Add(ParseConfiguration(raw));
                    break;
                case TenantConfig.KindName:
                    rejectedTenants.Add(raw.Error("apiVersion", $"'{raw.ApiVersion}' is not a known apiVersion for {raw.Kind}"));
                    break;
                case ComponentConfig.KindName:
                case ResiliencyConfig.KindName:
                    throw raw.Error("apiVersion", $"'{raw.ApiVersion}' is not a known apiVersion for {raw.Kind}");
                default:
                    break;
            }
        }
        foreach (var (tenant, raw) in configReferences)
        {
            if (!configurations.Any(c => c.Name == tenant.ConfigName))
            {
                rejectedTenants.Add(raw.Error("spec.config", $"no Configuration named '{tenant.ConfigName}' is declared"));
                tenants.Remove(tenant);
            }
        }
        return new ResourceSet
        {
            Tenants = tenants,
            Components = components,
            Subscriptions = subscriptions,
            Resiliencies = resiliencies,
            Configurations = configurations,
            RejectedTenants = rejectedTenants,
            RejectedSubscriptions = rejectedSubscriptions,
        };
    }

    /// <summary>App-ids and tokens are unique: the first tenant in file order keeps them, a later one is refused.</summary>
    private static void CheckUniqueTenant(TenantConfig tenant, RawResource raw, Dictionary<string, RawResource> appIds, Dictionary<string, RawResource> tokens)
    {
        if (appIds.TryGetValue(tenant.AppId, out var otherApp))
        {
            throw raw.Error("spec.appId", $"app-id '{tenant.AppId}' is already declared by {otherApp.File}: {otherApp.Document}");
        }
        if (tokens.TryGetValue(tenant.ApiToken, out var otherToken))
        {
            throw raw.Error("spec.apiToken", $"the same token is already used by {otherToken.File}: {otherToken.Document}; every tenant needs its own token");
        }
        appIds[tenant.AppId] = raw;
        tokens[tenant.ApiToken] = raw;
    }

    private static void CheckUnique(Dictionary<string, RawResource> seen, string identity, RawResource raw)
    {
        if (seen.TryGetValue(identity, out var first))
        {
            throw raw.Error("metadata.name", $"duplicate name: {identity} is already declared in {first.File}");
        }
        seen[identity] = raw;
    }

    public static TenantConfig ParseTenant(RawResource raw, Func<string, string?> environment, SecretResolver? secrets)
    {
        var root = raw.Node;
        var spec = root["spec"];
        if (spec.IsMissing)
        {
            throw spec.Error("is required (a Tenant needs at least spec.apiToken)");
        }
        var appId = spec["appId"].AsString() ?? raw.Name;
        if (!NamePattern().IsMatch(appId) || appId.Contains(StateKeysSeparator, StringComparison.Ordinal))
        {
            throw spec["appId"].Error($"'{appId}' is not a valid app-id (letters, digits, '-', '.', '_'; at most 64)");
        }

        var endpoint = spec["appEndpoint"].AsString();
        if (endpoint is not null &&
            (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)))
        {
            throw spec["appEndpoint"].Error($"'{endpoint}' is not an absolute http or https URL");
        }

        var token = ParseToken(spec["apiToken"], environment, secrets);
        var limits = spec["limits"];
        var limitsConfig = new TenantLimitsConfig
        {
            RequestsPerSecond = limits["requestsPerSecond"].AsDouble(0.001, 10_000_000),
            Burst = (int?)limits["burst"].AsInt64(1, int.MaxValue),
            MaxConcurrency = (int?)limits["maxConcurrency"].AsInt64(1, 1_000_000),
            MaxQueue = (int?)limits["maxQueue"].AsInt64(0, 1_000_000),
            MaxRequestBodyBytes = limits["maxRequestBodyBytes"].AsInt64(0, 1L << 40),
            StateMaxKeys = limits["stateMaxKeys"].AsInt64(0, long.MaxValue),
            StateMaxBytes = limits["stateMaxBytes"].AsInt64(0, long.MaxValue),
            MaxMemoryBytes = limits["maxMemoryBytes"].AsInt64(0, 1L << 40),
        };
        foreach (var (key, node) in limits.Entries())
        {
            if (!KnownLimits.Contains(key))
            {
                throw node.Error($"unknown limit; known limits are {string.Join(", ", KnownLimits)}");
            }
        }

        return new TenantConfig
        {
            Name = raw.Name,
            AppId = appId,
            AppEndpoint = endpoint?.TrimEnd('/'),
            ApiToken = token,
            Limits = limitsConfig,
            AppChannel = ParseAppChannel(spec["appChannel"], environment, secrets),
            ConfigName = spec["config"].AsString(),
            Source = $"{raw.File}: {raw.Document}",
        };
    }

    private const string StateKeysSeparator = "||";

    private static readonly string[] KnownLimits =
        ["requestsPerSecond", "burst", "maxConcurrency", "maxQueue", "maxRequestBodyBytes", "stateMaxKeys", "stateMaxBytes", "maxMemoryBytes"];

    /// <summary>Longest API token accepted, in UTF-8 bytes.</summary>
    public const int MaxTokenBytes = 512;

    private static string ParseToken(ResourceNode node, Func<string, string?> environment, SecretResolver? secrets)
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

    public static ComponentConfig ParseComponent(RawResource raw)
    {
        var root = raw.Node;
        if (!NamePattern().IsMatch(raw.Name))
        {
            throw root["metadata"]["name"].Error($"'{raw.Name}' is not a valid component name");
        }
        var spec = root["spec"];
        var type = spec["type"].RequiredString();
        var version = spec["version"].AsString() ?? "v1";
        var metadata = new List<ComponentMetadataItem>();
        foreach (var item in spec["metadata"].Items())
        {
            var name = item["name"].RequiredString();
            var value = item["value"];
            if (!value.IsMissing && value.Value is not string)
            {
                metadata.Add(new ComponentMetadataItem(name, YamlText(value.Value)));
                continue;
            }
            var text = value.AsString();
            var envRef = item["envRef"].AsString();
            SecretKeyRef? secret = null;
            var secretNode = item["secretKeyRef"];
            if (!secretNode.IsMissing)
            {
                secret = new SecretKeyRef(secretNode["name"].RequiredString(), secretNode["key"].AsString() ?? secretNode["name"].RequiredString());
            }
            if (text is null && envRef is null && secret is null)
            {
                text = "";
            }
            metadata.Add(new ComponentMetadataItem(name, text, envRef, secret));
        }

        var scopes = root["scopes"].AsStringList();
        return new ComponentConfig
        {
            Name = raw.Name,
            Type = type,
            Version = version,
            Metadata = metadata,
            Scopes = scopes,
            InitTimeout = spec["initTimeout"].AsDuration() ?? TimeSpan.FromSeconds(5),
            IgnoreErrors = spec["ignoreErrors"].AsBool() ?? false,
            SecretStore = root["auth"]["secretStore"].AsString(),
            BaseDirectory = Path.GetDirectoryName(Path.GetFullPath(raw.File)),
            Source = $"{raw.File}: {raw.Document}",
        };
    }

    private static string YamlText(object? value) =>
        value switch
        {
            null => "",
            string s => s,
            _ => System.Text.Json.JsonSerializer.Serialize(ToPlain(value)),
        };

    private static object? ToPlain(object? value) =>
        value switch
        {
            Dictionary<object, object?> map => map.ToDictionary(kv => kv.Key.ToString() ?? "", kv => ToPlain(kv.Value)),
            List<object?> list => list.Select(ToPlain).ToList(),
            _ => value,
        };
}
