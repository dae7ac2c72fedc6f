using SharedRuntime.Components;
using SharedRuntime.Configuration;

namespace SharedRuntime.Tenancy;

/// <summary>
/// Checks a set's components before anything is built: each names a known type, and no state store is given a key
/// prefix that would let apps share keys.
/// </summary>
internal sealed class ComponentValidator(IReadOnlyDictionary<string, IComponentFactory> factories)
{
    /// <summary>Throws <see cref="ResourceException"/> for the first component of <paramref name="set"/> that cannot be served.</summary>
    public void Validate(ResourceSet set)
    {
        foreach (var component in set.Components)
        {
            Validate(component);
        }
    }

    /// <summary>Why <paramref name="component"/> cannot be served here, or null.</summary>
    public string? Problem(ComponentConfig component)
    {
        try
        {
            Validate(component);
            return null;
        }
        catch (ResourceException ex)
        {
            return ex.Problem;
        }
    }

    private void Validate(ComponentConfig component)
    {
        if (!factories.ContainsKey(component.Type))
        {
            throw new ResourceException(SourceFile(component.Source), $"Component/{component.Name}", "spec.type",
                $"unknown component type '{component.Type}'; known types are {string.Join(", ", factories.Keys.Order(StringComparer.Ordinal))}");
        }
        var keyPrefix = component.Metadata.FirstOrDefault(m => string.Equals(m.Name, "keyPrefix", StringComparison.OrdinalIgnoreCase));
        // Dapr's 'namespace' (namespace.appid||key) is what the runtime does in Kubernetes anyway, and falls back to
        // 'appid' without a namespace, as in Dapr.
        if (component.Category == "state" && keyPrefix?.Value is { } prefix &&
            !string.Equals(prefix, "appid", StringComparison.OrdinalIgnoreCase) && !string.Equals(prefix, "namespace", StringComparison.OrdinalIgnoreCase))
        {
            throw new ResourceException(SourceFile(component.Source), $"Component/{component.Name}", "spec.metadata.keyPrefix",
                $"'{prefix}' would let apps share keys; a shared runtime always prefixes state keys with the app-id, and in Kubernetes with the namespace as well (use 'appid' or 'namespace', or leave it out)");
        }
    }

    private static string SourceFile(string source)
    {
        var index = source.LastIndexOf(": ", StringComparison.Ordinal);
        return index < 0 ? source : source[..index];
    }
}
