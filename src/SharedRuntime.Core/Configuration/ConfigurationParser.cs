namespace SharedRuntime.Configuration;

/// <summary>Parses a Configuration resource: access control, API allow and deny lists, secret scopes, the tracing sampling rate.</summary>
internal static class ConfigurationParser
{
    /// <summary>At most this many rules in <c>api.allowed</c> and in <c>api.denied</c>, and scopes in <c>secrets.scopes</c>.</summary>
    public const int MaxRules = 100;

    /// <summary>At most this many names in a scope's <c>allowedSecrets</c> and in its <c>deniedSecrets</c>.</summary>
    public const int MaxSecretNames = 1000;

    public static ConfigurationResourceConfig Parse(RawResource raw)
    {
        var spec = raw.Node["spec"];
        return new ConfigurationResourceConfig
        {
            Name = raw.Name,
            AccessControl = AccessControl(spec["accessControl"], raw.Namespace),
            Api = Api(spec["api"]),
            SecretScopes = SecretScopes(spec["secrets"]["scopes"]),
            SamplingRate = spec["tracing"]["samplingRate"].AsDouble(0, 1),
            Namespace = raw.Namespace,
            Source = ResourceRules.SourceOf(raw),
        };
    }

    /// <param name="namespace">
    /// The Configuration's namespace in Kubernetes: a policy names its caller by app-id and <c>namespace</c>, which
    /// defaults to the Configuration's own. Resource files have one namespace, and a policy's <c>namespace</c> is ignored.
    /// </param>
    private static AccessControlConfig? AccessControl(ResourceNode acl, string? @namespace)
    {
        if (acl.IsMissing)
        {
            return null;
        }
        var policies = new Dictionary<string, AppAccessPolicy>(StringComparer.Ordinal);
        foreach (var policy in acl["policies"].Items())
        {
            var appId = policy["appId"].RequiredString();
            var callerNamespace = @namespace is null ? null : policy["namespace"].AsString() ?? @namespace;
            var caller = ResourceNamespace.Key(appId, callerNamespace);
            var operations = new List<OperationAccess>();
            foreach (var operation in policy["operations"].Items())
            {
                var verbs = operation["httpVerb"].AsStringList();
                operations.Add(new OperationAccess(
                    operation["name"].RequiredString(),
                    verbs.Count == 0 ? ["*"] : verbs,
                    Action(operation["action"]) ?? throw operation["action"].Error("is required: allow or deny")));
            }
            if (policies.ContainsKey(caller))
            {
                throw policy["appId"].Error($"a policy for '{appId}' is already declared");
            }
            policies[caller] = new AppAccessPolicy(Action(policy["defaultAction"]) ?? Action(acl["defaultAction"]) ?? AccessAction.Allow, operations);
        }
        return new AccessControlConfig(Action(acl["defaultAction"]) ?? AccessAction.Allow, policies);
    }

    private static ApiAccessConfig? Api(ResourceNode api)
    {
        if (api.IsMissing)
        {
            return null;
        }
        var allowed = Rules(api["allowed"]);
        var denied = Rules(api["denied"]);
        return allowed.Count == 0 && denied.Count == 0 ? null : new ApiAccessConfig(allowed, denied);
    }

    private static List<ApiAccessRule> Rules(ResourceNode list)
    {
        var rules = new List<ApiAccessRule>();
        foreach (var rule in list.Items())
        {
            if (rules.Count == MaxRules)
            {
                throw list.Error($"has more than {MaxRules} rules");
            }
            // Dapr reads rules of its own protocol only; a rule that names none is taken as HTTP, as Dapr's first
            // allow lists (HTTP only) were written.
            var protocol = rule["protocol"].AsString()?.ToLowerInvariant() switch
            {
                null or "http" => ApiProtocol.Http,
                "grpc" => ApiProtocol.Grpc,
                var other => throw rule["protocol"].Error($"'{other}' is not a protocol; use http or grpc"),
            };
            rules.Add(new ApiAccessRule(rule["name"].RequiredString(), rule["version"].RequiredString(), protocol));
        }
        return rules;
    }

    private static List<SecretScopeConfig> SecretScopes(ResourceNode scopes)
    {
        var result = new List<SecretScopeConfig>();
        foreach (var scope in scopes.Items())
        {
            if (result.Count == MaxRules)
            {
                throw scopes.Error($"has more than {MaxRules} scopes");
            }
            var storeName = scope["storeName"].RequiredString();
            if (result.Any(s => s.StoreName == storeName))
            {
                throw scope["storeName"].Error($"store '{storeName}' has a scope already");
            }
            result.Add(new SecretScopeConfig(storeName, Action(scope["defaultAccess"]) ?? AccessAction.Allow,
                SecretNames(scope["allowedSecrets"]), SecretNames(scope["deniedSecrets"])));
        }
        return result;
    }

    private static IReadOnlyList<string> SecretNames(ResourceNode list)
    {
        var names = list.AsStringList();
        return names.Count > MaxSecretNames ? throw list.Error($"has more than {MaxSecretNames} names") : names;
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
