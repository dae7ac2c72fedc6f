namespace SharedRuntime.Configuration;

/// <summary>
/// A document's typed resource as <see cref="ResourceParser"/> made it, kept with the document so that an unchanged
/// document is not parsed again: valid while every environment variable it read has the same value.
/// </summary>
internal sealed class ParsedResource(object config, IReadOnlyList<(string Name, string? Value)> environmentReads, string? tokenDigest = null)
{
    /// <summary>The typed resource (a <see cref="TenantConfig"/>, a <see cref="ComponentConfig"/>, ...).</summary>
    public object Config { get; } = config;

    /// <summary>A Tenant's <see cref="TenantConfig.TokenDigest"/>, computed once.</summary>
    public string? TokenDigest { get; } = tokenDigest;

    /// <summary>Whether parsing again would read the same environment, so would make the same resource.</summary>
    public bool StillValid(Func<string, string?> environment)
    {
        foreach (var (name, value) in environmentReads)
        {
            if (!string.Equals(environment(name), value, StringComparison.Ordinal))
            {
                return false;
            }
        }
        return true;
    }
}
