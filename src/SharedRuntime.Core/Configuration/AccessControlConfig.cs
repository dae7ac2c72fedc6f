namespace SharedRuntime.Configuration;

public enum AccessAction { Allow, Deny }

/// <summary>Who may call an app: per-caller policies, and a default for callers without one.</summary>
public sealed record AccessControlConfig(AccessAction DefaultAction, IReadOnlyDictionary<string, AppAccessPolicy> Policies)
{
    /// <summary>
    /// Whether the caller may call <paramref name="method"/> with <paramref name="verb"/>. The caller is its app-id, or
    /// in Kubernetes <c>namespace/app-id</c> (<see cref="ResourceNamespace.Key"/>), as the policies are keyed. The method
    /// is the decoded path the app will receive (see the runtime's <c>MethodPath</c>); operation names match it
    /// regardless of case, as Dapr matches them for HTTP apps, since most app frameworks route case-insensitively.
    /// </summary>
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
/// segment, <c>/orders/**</c> any depth below. Names are decoded (<c>%20</c> is a space) and compared without regard
/// to case: <c>/admin/**</c> also denies <c>/ADMIN/x</c>, which a case-insensitive app would route to the same handler.
/// </summary>
public sealed record OperationAccess(string Name, IReadOnlyList<string> Verbs, AccessAction Action)
{
    private readonly string _pattern = Pattern(Name);

    public string Name
    {
        get;
        init
        {
            field = value;
            _pattern = Pattern(value);
        }
    } = Name;

    public bool Matches(string path)
    {
        var pattern = _pattern;
        if (pattern.EndsWith("/**", StringComparison.Ordinal))
        {
            var prefix = pattern[..^3];
            return path.Equals(prefix, StringComparison.OrdinalIgnoreCase) ||
                   (path.Length > prefix.Length && path[prefix.Length] == '/' && path.StartsWith(prefix, StringComparison.OrdinalIgnoreCase));
        }
        if (pattern.EndsWith("/*", StringComparison.Ordinal))
        {
            var prefix = pattern[..^2];
            return path.Length > prefix.Length + 1 && path[prefix.Length] == '/' && path.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) &&
                   path.IndexOf('/', prefix.Length + 1) < 0;
        }
        return string.Equals(path.TrimEnd('/'), pattern.TrimEnd('/'), StringComparison.OrdinalIgnoreCase);
    }

    private static string Pattern(string name)
    {
        var pattern = "/" + name.TrimStart('/');
        try
        {
            return Uri.UnescapeDataString(pattern);
        }
        catch (UriFormatException)
        {
            return pattern;
        }
    }
}
