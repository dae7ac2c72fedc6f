namespace SharedRuntime.Configuration;

/// <summary>Parsing of what the app channel reads: Subscription, Resiliency and Configuration resources, and a Tenant's spec.appChannel.</summary>
internal static partial class ResourceParser
{
    public const string DaprApiVersion = "dapr.io/v1alpha1";
    public const string DaprApiVersion2 = "dapr.io/v2alpha1";

    private static readonly string[] KnownAppChannelFields =
        ["maxConcurrency", "maxQueue", "timeout", "discoverSubscriptions", "appApiToken", "breakAfterFailures", "breakDuration"];

    private static AppChannelConfig ParseAppChannel(ResourceNode node, Func<string, string?> environment, SecretResolver? secrets)
    {
        if (node.IsMissing)
        {
            return AppChannelConfig.Default;
        }
        foreach (var (key, child) in node.Entries())
        {
            if (!KnownAppChannelFields.Contains(key))
            {
                throw child.Error($"unknown field; known fields are {string.Join(", ", KnownAppChannelFields)}");
            }
        }
        var defaults = AppChannelConfig.Default;
        return new AppChannelConfig
        {
            MaxConcurrency = (int?)node["maxConcurrency"].AsInt64(1, 100_000) ?? defaults.MaxConcurrency,
            MaxQueue = (int?)node["maxQueue"].AsInt64(0, 1_000_000) ?? defaults.MaxQueue,
            Timeout = Positive(node["timeout"]) ?? defaults.Timeout,
            DiscoverSubscriptions = node["discoverSubscriptions"].AsBool() ?? false,
            AppApiToken = node["appApiToken"].IsMissing ? null : ParseToken(node["appApiToken"], environment, secrets),
            BreakAfterFailures = (int?)node["breakAfterFailures"].AsInt64(0, 1_000_000) ?? defaults.BreakAfterFailures,
            BreakDuration = Positive(node["breakDuration"]) ?? defaults.BreakDuration,
        };
    }

    private static TimeSpan? Positive(ResourceNode node)
    {
        var value = node.AsDuration();
        if (value is { } v && v <= TimeSpan.Zero)
        {
            throw node.Error("must be longer than zero");
        }
        return value;
    }

    public static SubscriptionConfig ParseSubscription(RawResource raw)
    {
        var root = raw.Node;
        var spec = root["spec"];
        var pubsub = spec["pubsubname"].RequiredString();
        var topic = spec["topic"].RequiredString();
        SubscriptionRoutes routes;
        if (raw.ApiVersion == DaprApiVersion2)
        {
            var rules = new List<RouteRule>();
            foreach (var rule in spec["routes"]["rules"].Items())
            {
                var match = rule["match"].AsString() ?? "";
                var path = rule["path"].RequiredString();
                try
                {
                    RouteMatch.Parse(match);
                }
                catch (FormatException ex)
                {
                    throw rule["match"].Error(ex.Message);
                }
                rules.Add(new RouteRule(match, path));
            }
            routes = new SubscriptionRoutes(rules, spec["routes"]["default"].AsString());
            if (rules.Count == 0 && routes.Default is null)
            {
                throw spec["routes"].Error("needs a default path or at least one rule");
            }
        }
        else
        {
            routes = new SubscriptionRoutes([], spec["route"].RequiredString());
        }
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in spec["metadata"].Entries())
        {
            metadata[key] = value.AsString() ?? "";
        }
        var subscription = new SubscriptionConfig
        {
            Name = raw.Name,
            PubsubName = pubsub,
            Topic = topic,
            Routes = routes,
            DeadLetterTopic = spec["deadLetterTopic"].AsString(),
            Metadata = metadata,
            Scopes = root["scopes"].AsStringList(),
            Source = $"{raw.File}: {raw.Document}",
        };
        return SubscriptionLimits.Problem(subscription) is { } problem ? throw spec.Error(problem) : subscription;
    }

    /// <summary>The app-ids a Subscription document names, as far as they can be read, for saying whom a refusal costs.</summary>
    private static IReadOnlyList<string> ScopesOf(RawResource raw)
    {
        try
        {
            return raw.Node["scopes"].AsStringList();
        }
        catch (ResourceException)
        {
            return [];
        }
    }

    /// <summary>
    /// Counts declarative subscriptions per app, refusing one that would give an app more than
    /// <see cref="SubscriptionLimits.MaxPerApp"/>. A subscription without scopes counts for every app.
    /// </summary>
    private sealed class SubscriptionCounter
    {
        private readonly Dictionary<string, int> _scoped = new(StringComparer.Ordinal);
        private (string App, int Count) _busiest = ("every app", 0);
        private int _everyApp;

        public void Add(SubscriptionConfig subscription, RawResource raw)
        {
            var apps = subscription.Scopes.Distinct(StringComparer.Ordinal).ToList();
            var (app, count) = apps.Count == 0 ? _busiest : apps.Select(a => (a, _scoped.GetValueOrDefault(a))).MaxBy(a => a.Item2);
            if (_everyApp + count >= SubscriptionLimits.MaxPerApp)
            {
                throw raw.Error(null, $"{app} already has {SubscriptionLimits.MaxPerApp} subscriptions, the most one app may have");
            }
            if (apps.Count == 0)
            {
                _everyApp++;
                return;
            }
            foreach (var scoped in apps)
            {
                var now = _scoped[scoped] = _scoped.GetValueOrDefault(scoped) + 1;
                if (now > _busiest.Count)
                {
                    _busiest = (scoped, now);
                }
            }
        }
    }

    public static ResiliencyConfig ParseResiliency(RawResource raw)
    {
        var root = raw.Node;
        var policies = root["spec"]["policies"];
        var timeouts = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);
        foreach (var (name, node) in policies["timeouts"].Entries())
        {
            timeouts[name] = Positive(node) ?? throw node.Error("is required");
        }

        var retries = new Dictionary<string, RetryPolicyConfig>(StringComparer.Ordinal);
        foreach (var (name, node) in policies["retries"].Entries())
        {
            var policy = (node["policy"].AsString() ?? "constant") switch
            {
                "constant" => RetryBackoff.Constant,
                "exponential" => RetryBackoff.Exponential,
                var other => throw node["policy"].Error($"'{other}' is not a retry policy; use constant or exponential"),
            };
            retries[name] = new RetryPolicyConfig(
                policy,
                node["duration"].AsDuration() ?? (policy == RetryBackoff.Constant ? TimeSpan.FromSeconds(5) : TimeSpan.FromMilliseconds(500)),
                node["maxInterval"].AsDuration() ?? TimeSpan.FromSeconds(60),
                (int?)node["maxRetries"].AsInt64(-1, int.MaxValue) ?? -1,
                Codes(node["matching"]["httpStatusCodes"], 100, 599),
                Codes(node["matching"]["gRPCStatusCodes"], 0, 16));
        }

        var breakers = new Dictionary<string, CircuitBreakerPolicyConfig>(StringComparer.Ordinal);
        foreach (var (name, node) in policies["circuitBreakers"].Entries())
        {
            TripExpression trip;
            try
            {
                trip = TripExpression.Parse(node["trip"].AsString() ?? "consecutiveFailures > 5");
            }
            catch (FormatException ex)
            {
                throw node["trip"].Error(ex.Message);
            }
            breakers[name] = new CircuitBreakerPolicyConfig(
                (int?)node["maxRequests"].AsInt64(1, 1_000_000) ?? 1,
                node["interval"].AsDuration() ?? TimeSpan.Zero,
                node["timeout"].AsDuration() ?? TimeSpan.FromSeconds(60),
                trip);
        }

        var targets = root["spec"]["targets"];
        var apps = new Dictionary<string, PolicyRefs>(StringComparer.Ordinal);
        foreach (var (appId, node) in targets["apps"].Entries())
        {
            apps[appId] = Refs(node, timeouts, retries, breakers);
        }
        var components = new Dictionary<string, ComponentPolicyRefs>(StringComparer.Ordinal);
        foreach (var (name, node) in targets["components"].Entries())
        {
            components[name] = new ComponentPolicyRefs(
                node["outbound"].IsMissing ? null : Refs(node["outbound"], timeouts, retries, breakers),
                node["inbound"].IsMissing ? null : Refs(node["inbound"], timeouts, retries, breakers));
        }
        return new ResiliencyConfig
        {
            Name = raw.Name,
            Timeouts = timeouts,
            Retries = retries,
            CircuitBreakers = breakers,
            Apps = apps,
            Components = components,
            Scopes = root["scopes"].AsStringList(),
            Source = $"{raw.File}: {raw.Document}",
        };
    }

    private static StatusCodeSet? Codes(ResourceNode node, int min, int max)
    {
        var text = node.AsString();
        if (text is null)
        {
            return null;
        }
        return StatusCodeSet.TryParse(text, min, max, out var set)
            ? set
            : throw node.Error($"'{text}' is not a list of codes or ranges between {min} and {max}, like \"429,500-599\"");
    }

    private static PolicyRefs Refs(
        ResourceNode node,
        Dictionary<string, TimeSpan> timeouts,
        Dictionary<string, RetryPolicyConfig> retries,
        Dictionary<string, CircuitBreakerPolicyConfig> breakers)
    {
        var timeout = node["timeout"].AsString();
        var retry = node["retry"].AsString();
        var breaker = node["circuitBreaker"].AsString();
        if (timeout is not null && !timeouts.ContainsKey(timeout))
        {
            throw node["timeout"].Error($"no timeout policy named '{timeout}' in spec.policies.timeouts");
        }
        if (retry is not null && !retries.ContainsKey(retry))
        {
            throw node["retry"].Error($"no retry policy named '{retry}' in spec.policies.retries");
        }
        if (breaker is not null && !breakers.ContainsKey(breaker))
        {
            throw node["circuitBreaker"].Error($"no circuit breaker named '{breaker}' in spec.policies.circuitBreakers");
        }
        return new PolicyRefs(timeout, retry, breaker);
    }

    public static ConfigurationResourceConfig ParseConfiguration(RawResource raw)
    {
        var acl = raw.Node["spec"]["accessControl"];
        AccessControlConfig? accessControl = null;
        if (!acl.IsMissing)
        {
            var policies = new Dictionary<string, AppAccessPolicy>(StringComparer.Ordinal);
            foreach (var policy in acl["policies"].Items())
            {
                var appId = policy["appId"].RequiredString();
                var operations = new List<OperationAccess>();
                foreach (var operation in policy["operations"].Items())
                {
                    var verbs = operation["httpVerb"].AsStringList();
                    operations.Add(new OperationAccess(
                        operation["name"].RequiredString(),
                        verbs.Count == 0 ? ["*"] : verbs,
                        Action(operation["action"]) ?? throw operation["action"].Error("is required: allow or deny")));
                }
                if (policies.ContainsKey(appId))
                {
                    throw policy["appId"].Error($"a policy for '{appId}' is already declared");
                }
                policies[appId] = new AppAccessPolicy(Action(policy["defaultAction"]) ?? Action(acl["defaultAction"]) ?? AccessAction.Allow, operations);
            }
            accessControl = new AccessControlConfig(Action(acl["defaultAction"]) ?? AccessAction.Allow, policies);
        }
        return new ConfigurationResourceConfig { Name = raw.Name, AccessControl = accessControl, Source = $"{raw.File}: {raw.Document}" };
    }

    private static AccessAction? Action(ResourceNode node) =>
        node.AsString()?.ToLowerInvariant() switch
        {
            null => null,
            "allow" => AccessAction.Allow,
            "deny" => AccessAction.Deny,
            var other => throw node.Error($"'{other}' is not an action; use allow or deny"),
        };
}
