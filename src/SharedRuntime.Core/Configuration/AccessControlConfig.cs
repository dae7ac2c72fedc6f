namespace SharedRuntime.Configuration;

/// <summary>
/// A Dapr <c>Configuration</c> resource (dapr.io/v1alpha1). SharedRuntime reads its <c>accessControl</c>: which
/// apps may invoke the app whose Tenant names this configuration in <c>spec.config</c>.
/// </summary>
public sealed record ConfigurationResourceConfig
{
    public const string KindName = "Configuration";

    public required string Name { get; init; }
    public AccessControlConfig? AccessControl { get; init; }
    public required string Source { get; init; }
}

public enum AccessAction { Allow, Deny }

/// <summary>Who may call an app: per-caller policies, and a default for callers without one.</summary>
public sealed record AccessControlConfig(AccessAction DefaultAction, IReadOnlyDictionary<string, AppAccessPolicy> Policies)
{
    /// <summary>Whether <paramref name="callerAppId"/> may call <paramref name="method"/> with <paramref name="verb"/>.</summary>
    public bool IsAllowed(string callerAppId, string method, string verb)
    {
        if (!Policies.TryGetValue(callerAppId, out var policy))
        {
            return DefaultAction == AccessAction.Allow;
        }
        return policy.Decide(method, verb) == AccessAction.Allow;
    }
}

/// <summary>The policy for one calling app: operations matched by path (longest match wins), else its default.</summary>
public sealed record AppAccessPolicy(AccessAction DefaultAction, IReadOnlyList<OperationAccess> Operations)
{
    public AccessAction Decide(string method, string verb)
    {
        var path = "/" + method.TrimStart('/');
        OperationAccess? best = null;
        foreach (var operation in Operations)
        {
            if (operation.Matches(path) && (best is null || operation.Name.Length > best.Name.Length))
            {
                best = operation;
            }
        }
        if (best is null)
        {
            return DefaultAction;
        }
        return best.Verbs.Any(v => v == "*" || string.Equals(v, verb, StringComparison.OrdinalIgnoreCase)) ? best.Action : DefaultAction;
    }
}

/// <summary>
/// One operation rule. <see cref="Name"/> is a path: <c>/orders</c> matches exactly, <c>/orders/*</c> one more
/// segment, <c>/orders/**</c> any depth below.
/// </summary>
public sealed record OperationAccess(string Name, IReadOnlyList<string> Verbs, AccessAction Action)
{
    public bool Matches(string path)
    {
        var pattern = "/" + Name.TrimStart('/');
        if (pattern.EndsWith("/**", StringComparison.Ordinal))
        {
            var prefix = pattern[..^3];
            return path == prefix || path.StartsWith(prefix + "/", StringComparison.Ordinal);
        }
        if (pattern.EndsWith("/*", StringComparison.Ordinal))
        {
            var prefix = pattern[..^2];
            return path.StartsWith(prefix + "/", StringComparison.Ordinal) && path.IndexOf('/', prefix.Length + 1) < 0;
        }
        return string.Equals(path.TrimEnd('/'), pattern.TrimEnd('/'), StringComparison.Ordinal);
    }
}
