namespace SharedRuntime.Configuration;

/// <summary>Parses a Configuration resource: its access control policies.</summary>
internal static class ConfigurationParser
{
    public static ConfigurationResourceConfig Parse(RawResource raw)
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
        return new ConfigurationResourceConfig { Name = raw.Name, AccessControl = accessControl, Source = ResourceRules.SourceOf(raw) };
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
