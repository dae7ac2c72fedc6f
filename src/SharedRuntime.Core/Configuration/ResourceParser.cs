namespace SharedRuntime.Configuration;

/// <summary>
/// Turns raw YAML documents into a checked <see cref="ResourceSet"/>, naming file, document and field on error. Each
/// kind has its own parser (<see cref="TenantParser"/>, <see cref="ComponentParser"/>, <see cref="SubscriptionParser"/>,
/// <see cref="ResiliencyParser"/>, <see cref="ConfigurationParser"/>,
/// <see cref="HttpEndpointParser"/>); this one applies the rules across documents:
/// unique names, app-ids and tokens, subscriptions per app, and Configurations a tenant names.
/// </summary>
internal static class ResourceParser
{
    public const string DaprApiVersion = "dapr.io/v1alpha1";
    public const string DaprApiVersion2 = "dapr.io/v2alpha1";

    /// <summary>
    /// The resolver for documents whose Secret references their source resolved into the tree itself (Kubernetes): a
    /// reference left there names a key that does not exist. Such a source makes a new document when a Secret value it
    /// used changes, so what the parsers make of a document is kept with it, as for a file's.
    /// </summary>
    public static SecretResolver ResolvedBySource { get; } = static (_, _) => null;

    /// <summary>
    /// The tables that check names, app-ids and tokens are unique, kept by a source between its parses: with thousands of
    /// tenants each is a large array, made once instead of on every reload.
    /// </summary>
    internal sealed class UniquenessTables
    {
        public Dictionary<string, RawResource> Names { get; } = new(StringComparer.Ordinal);
        public Dictionary<string, RawResource> AppIds { get; } = new(StringComparer.Ordinal);
        public Dictionary<string, RawResource> Tokens { get; } = new(StringComparer.Ordinal);

        public void Clear()
        {
            Names.Clear();
            AppIds.Clear();
            Tokens.Clear();
        }
    }

    public static ResourceSet Parse(IEnumerable<RawResource> raws, Func<string, string?> environment, SecretResolver? secrets = null, bool fromCache = false) =>
        Parse(raws, environment, secrets, fromCache, null);

    internal static ResourceSet Parse(IEnumerable<RawResource> raws, Func<string, string?> environment, SecretResolver? secrets, bool fromCache, UniquenessTables? tables)
    {
        tables ??= new UniquenessTables();
        tables.Clear();
        try
        {
            return ParseWith(raws, environment, secrets, fromCache, tables.Names, tables.AppIds, tables.Tokens);
        }
        finally
        {
            tables.Clear(); // keeps the arrays, not the documents
        }
    }

    private static ResourceSet ParseWith(IEnumerable<RawResource> raws, Func<string, string?> environment, SecretResolver? secrets, bool fromCache,
        Dictionary<string, RawResource> seen, Dictionary<string, RawResource> appIds, Dictionary<string, RawResource> tokens)
    {
        var count = raws.TryGetNonEnumeratedCount(out var known) ? known : 0;
        var tenants = new List<TenantConfig>(count);
        var components = new List<ComponentConfig>();
        var subscriptions = new List<SubscriptionConfig>();
        var resiliencies = new List<ResiliencyConfig>();
        var configurations = new List<ConfigurationResourceConfig>();
        var httpEndpoints = new List<HttpEndpointConfig>();
        var configReferences = new List<(TenantConfig Tenant, RawResource Raw)>();
        var rejectedTenants = new List<ResourceException>();
        var rejectedSubscriptions = new List<RejectedSubscription>();
        var subscriptionsPerApp = new SubscriptionCounter();

        foreach (var raw in raws)
        {
            var identity = raw.Identity;
            switch (raw.Kind)
            {
                case TenantConfig.KindName when raw.ApiVersion == TenantConfig.ApiVersion:
                    try
                    {
                        CheckUnique(seen, identity, raw);
                        var tenant = ParseTenant(raw, environment, secrets, fromCache, out var digest);
                        CheckUniqueTenant(tenant, digest, raw, appIds, tokens);
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
                    components.Add(Memoized(raw, ComponentParser.Parse));
                    break;
                case SubscriptionConfig.KindName:
                    try
                    {
                        if (raw.ApiVersion is not (DaprApiVersion or DaprApiVersion2))
                        {
                            throw raw.Error("apiVersion", $"'{raw.ApiVersion}' is not a known apiVersion for {raw.Kind}");
                        }
                        CheckUnique(seen, identity, raw);
                        var subscription = Memoized(raw, SubscriptionParser.Parse);
                        subscriptionsPerApp.Add(subscription, raw);
                        subscriptions.Add(subscription);
                    }
                    catch (ResourceException ex)
                    {
                        // Only the apps this subscription names lose it; the rest of the set applies.
                        rejectedSubscriptions.Add(new RejectedSubscription(ex, SubscriptionParser.ScopesOf(raw)));
                    }
                    break;
                case ResiliencyConfig.KindName when raw.ApiVersion == DaprApiVersion:
                    CheckUnique(seen, identity, raw);
                    resiliencies.Add(Memoized(raw, ResiliencyParser.Parse));
                    break;
                case ConfigurationResourceConfig.KindName when raw.ApiVersion == DaprApiVersion:
                    CheckUnique(seen, identity, raw);
                    configurations.Add(Memoized(raw, ConfigurationParser.Parse));
                    break;
                case HttpEndpointConfig.KindName when raw.ApiVersion == DaprApiVersion:
                    CheckUnique(seen, identity, raw);
                    try
                    {
                        httpEndpoints.Add(HttpEndpointParser.Parse(raw, secrets));
                    }
                    catch (ResourceException) when (fromCache)
                    {
                        // The cache keeps Secret references, never their values: such an endpoint waits for the cluster.
                    }
                    break;
                case TenantConfig.KindName:
                    rejectedTenants.Add(raw.Error("apiVersion", $"'{raw.ApiVersion}' is not a known apiVersion for {raw.Kind}"));
                    break;
                case ComponentConfig.KindName:
                case ResiliencyConfig.KindName:
                case HttpEndpointConfig.KindName:
                    throw raw.Error("apiVersion", $"'{raw.ApiVersion}' is not a known apiVersion for {raw.Kind}");
                default:
                    break;
            }
        }
        foreach (var (tenant, raw) in configReferences)
        {
            if (!configurations.Any(c => c.Name == tenant.ConfigName && ResourceNamespace.Same(c.Namespace, tenant.Namespace)))
            {
                rejectedTenants.Add(raw.Error("spec.config", tenant.Namespace is null
                    ? $"no Configuration named '{tenant.ConfigName}' is declared"
                    : $"no Configuration named '{tenant.ConfigName}' is declared in namespace {tenant.Namespace}"));
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
            HttpEndpoints = httpEndpoints,
            RejectedTenants = rejectedTenants,
            RejectedSubscriptions = rejectedSubscriptions,
        };
    }

    /// <summary>
    /// App-ids (within a namespace) and tokens (everywhere) are unique: the first tenant in file order keeps them, a
    /// later one is refused.
    /// </summary>
    private static void CheckUniqueTenant(TenantConfig tenant, string digest, RawResource raw, Dictionary<string, RawResource> appIds, Dictionary<string, RawResource> tokens)
    {
        if (appIds.TryGetValue(tenant.Id, out var otherApp))
        {
            throw raw.Error("spec.appId", $"app-id '{tenant.AppId}' is already declared by {otherApp.File}: {otherApp.Document}");
        }
        if (tokens.TryGetValue(digest, out var otherToken))
        {
            throw raw.Error("spec.apiToken", $"the same token is already used by {otherToken.File}: {otherToken.Document}; every tenant needs its own token");
        }
        appIds[tenant.Id] = raw;
        tokens[digest] = raw;
    }

    /// <summary>
    /// The Tenant of <paramref name="raw"/>, and its token's digest. A document parsed before (an unchanged file or API
    /// object) gives its earlier Tenant while the environment variables it read are unchanged; one whose secrets come from
    /// a resolver that reads them is parsed every time. A document that fails is never kept: it fails again.
    /// </summary>
    private static TenantConfig ParseTenant(RawResource raw, Func<string, string?> environment, SecretResolver? secrets, bool fromCache, out string digest)
    {
        var keep = secrets is null || secrets == ResolvedBySource;
        if (keep && raw.Parsed is { Config: TenantConfig cached, TokenDigest: { } cachedDigest } parsed && parsed.StillValid(environment))
        {
            digest = cachedDigest;
            return cached;
        }
        List<(string, string?)>? reads = null;
        var tenant = TenantParser.Parse(raw, name =>
        {
            var value = environment(name);
            (reads ??= []).Add((name, value));
            return value;
        }, secrets, fromCache);
        digest = tenant.TokenDigest;
        if (keep)
        {
            raw.Parsed = new ParsedResource(tenant, reads is null ? [] : reads, digest);
        }
        return tenant;
    }

    /// <summary>The resource <paramref name="parse"/> makes of <paramref name="raw"/>, parsed once per document (these kinds read nothing else).</summary>
    private static T Memoized<T>(RawResource raw, Func<RawResource, T> parse)
        where T : class
    {
        if (raw.Parsed is { Config: T cached })
        {
            return cached;
        }
        var config = parse(raw);
        raw.Parsed = new ParsedResource(config, []);
        return config;
    }

    private static void CheckUnique(Dictionary<string, RawResource> seen, string identity, RawResource raw)
    {
        if (seen.TryGetValue(identity, out var first))
        {
            throw raw.Error("metadata.name", $"duplicate name: {identity} is already declared in {first.File}");
        }
        seen[identity] = raw;
    }
}
